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

from probmix._random import quiet_singular_samples, seeded
from probmix.baselines.kmeans_init import kmeans_plusplus

__all__ = ["dispersed_starts", "dispersed_values", "initial_points"]


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


def dispersed_values(model, xs: torch.Tensor, n: int, seed: int) -> list[dict]:
    """``n`` spread-out site values of a GaussianMixture (standardised units), one per chain
    after the first (see :mod:`probmix.infer.mcmc.chain_starts`)."""
    from probmix.infer.map.em_steps import sticks_from_weights

    gen = torch.Generator(device=xs.device).manual_seed(int(seed) + 1)
    family = model.family
    s = dispersed_starts(xs, model.n_components, n, generator=gen)
    prec_chol, _ = family.precision_cholesky(family.from_full(s["covariances"]))
    values = {"weights": s["weights"], "means": s["means"],
              "precisions": family.precision_from_cholesky(prec_chol)}
    if model.is_dirichlet_process:
        values["sticks"] = sticks_from_weights(s["weights"])
    return [{name: v[i] for name, v in values.items()} for i in range(n)]


def initial_points(potential, values: dict | None, program, x, chains: int, jitter: float,
                    seed: int, dispersed: list[dict] | None = None) -> list[dict]:
    """Unconstrained start of each chain: MAP + jitter (chains after the first at the
    ``dispersed`` values when given), or prior draws when ``values`` is None."""
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    inits = []
    for c in range(chains):
        if values is not None and dispersed and c > 0:
            inits.append(potential.unconstrain(dispersed[c - 1]))
            continue
        if values is None:
            from pyro import poutine

            with seeded(seed * 7919 + c), quiet_singular_samples():
                trace = poutine.trace(program).get_trace(x)
            start = potential.unconstrain({n: trace.nodes[n]["value"] for n in potential.sites})
        else:
            start = potential.unconstrain(values)
            start = {n: v + jitter * torch.randn(v.shape, generator=gen, dtype=v.dtype,
                                                 device=v.device) for n, v in start.items()}
        inits.append(start)
    return inits
