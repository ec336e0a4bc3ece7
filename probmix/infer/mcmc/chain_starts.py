"""Overdispersed, different starting states for the chains of a mixture sampler.

r_hat compares chains; chains that all start at one point (the MAP solution) agree even when
each is stuck in the mode it started from, so r_hat cannot see it. ``init="dispersed"`` (the
samplers' default) starts chain 0 at the MAP solution and every other chain at its own
random, spread-out state: component means at a greedy k-means++ seeding of the data (a
different one per chain, in a random order of components), equal weights, and every
covariance isotropic with the data's mean variance divided by K^(2/D) (a cluster's share of
the spread; isotropic, so it belongs to every covariance family). A chain
that cannot leave the mode it found then disagrees with the others, and r_hat says so.
"""

from __future__ import annotations

import torch

from probmix.baselines.kmeans_init import kmeans_plusplus

__all__ = ["dispersed_starts"]


def dispersed_starts(x: torch.Tensor, n_components: int, n_starts: int, *,
                     generator: torch.Generator) -> dict:
    """``n_starts`` random, spread-out parameter sets of a K-component Gaussian mixture.

    Parameters
    ----------
    x : Tensor (N, D)
    n_components : int
        K.
    n_starts : int
        R, the number of starts.
    generator : torch.Generator
        The only source of randomness (on ``x``'s device).

    Returns
    -------
    dict
        ``weights`` (R, K), ``means`` (R, K, D) and ``covariances`` (R, K, D, D), in the units
        and dtype of ``x``.
    """
    k, (n, d) = n_components, x.shape
    means = kmeans_plusplus(x, k, n_init=n_starts, generator=generator)  # (R, K, D)
    order = torch.argsort(torch.rand(n_starts, k, generator=generator, device=x.device,
                                     dtype=x.dtype), -1)  # (R, K): a random component order
    means = torch.take_along_dim(means, order[..., None], 1)
    var = x.var(0).mean() if n > 1 else torch.ones((), dtype=x.dtype, device=x.device)
    var = var.clamp_min(torch.finfo(x.dtype).tiny)
    cov = var / k ** (2.0 / d) * torch.eye(d, dtype=x.dtype, device=x.device)  # (D, D)
    return {"weights": torch.full((n_starts, k), 1.0 / k, dtype=x.dtype, device=x.device),
            "means": means, "covariances": cov.expand(n_starts, k, d, d).clone()}
