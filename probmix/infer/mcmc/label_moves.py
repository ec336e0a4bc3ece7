"""Label-permutation moves for blocked Gibbs under the truncated stick-breaking prior.

Under a Dirichlet(α, ..., α) prior the labels are exchangeable and the order of the
components is immaterial. Under the stick-breaking prior (``weights_prior=
"dirichlet_process"``) it is not: with the sticks integrated out, an assignment z with
counts n_j has prior probability

    p(z) = Π_{j<K} B(1 + n_j, γ_j + m_j) / B(1, γ_j),    m_j = Σ_{i>j} n_i,

which favours large clusters on early labels. Blocked Gibbs (Ishwaran & James 2001) changes
the order of occupied components only by emptying and refilling them, which it almost never
does, so its draws depend on the label order of its start (Papaspiliopoulos & Roberts 2008,
who add label-switching moves to their sampler for exactly this reason).

The moves here act on z with the parameters and sticks integrated out, between the
assignment block and the parameter block: propose to exchange the labels a and b of every
point (a, b adjacent, j and j + 1 for each j in turn, then one pair drawn at random); the
component priors are identical, so p(x | z) is unchanged and the Metropolis–Hastings ratio is
the ratio of the stick-breaking prior, p(z') / p(z). Accepted exchanges permute the rows of
the sufficient statistics (and the sampled labels). The parameter block then draws the
parameters and sticks from p(θ, v | z', x), so the composed kernel keeps the posterior.
"""

from __future__ import annotations

import torch

from probmix.model.weights import tail_sums

__all__ = ["log_stick_prior", "permute_labels"]


def log_stick_prior(counts: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """log p(z) up to a constant, from the counts (..., K) and concentrations γ (K - 1,)."""
    head, tail = counts[..., :-1], tail_sums(counts)  # (..., K-1) each
    return (torch.lgamma(1.0 + head) + torch.lgamma(gamma + tail)
            - torch.lgamma(1.0 + gamma + head + tail)).sum(-1)


def _swap(perm: torch.Tensor, a: torch.Tensor, b: torch.Tensor, accept: torch.Tensor):
    """Exchange columns a[c] and b[c] of perm (C, K) in the rows c where accept[c]."""
    rows = torch.arange(perm.shape[0], device=perm.device)
    pa, pb = perm[rows, a].clone(), perm[rows, b].clone()
    perm[rows, a] = torch.where(accept, pb, pa)
    perm[rows, b] = torch.where(accept, pa, pb)


def permute_labels(stats: torch.Tensor, gamma: torch.Tensor, gen: torch.Generator):
    """One sweep of label exchanges per chain, accepted by the stick-breaking prior's ratio.

    Parameters
    ----------
    stats : Tensor (C, K, F)
        Sufficient statistics of the current assignments; ``stats[..., 0]`` the counts.
    gamma : Tensor (K - 1,)
        Concentration of each stick's Beta(1, γ_j) prior.
    gen : torch.Generator

    Returns
    -------
    stats : Tensor (C, K, F)
        The statistics in the new label order.
    perm : Tensor (C, K) int64
        ``perm[c, j]`` is the old label that became label j.
    """
    c, k, _ = stats.shape
    perm = torch.arange(k, device=stats.device).expand(c, k).clone()  # (C, K)
    if k < 2:
        return stats, perm
    counts = stats[..., 0]  # (C, K)
    gamma = gamma.to(counts.dtype)
    current = log_stick_prior(counts, gamma)  # (C,)
    pairs = [(torch.full((c,), j, device=stats.device), torch.full((c,), j + 1,
              device=stats.device)) for j in range(k - 1)]
    a = torch.randint(k, (c,), generator=gen, device=stats.device)
    b = (a + 1 + torch.randint(k - 1, (c,), generator=gen, device=stats.device)) % k
    pairs.append((a, b))  # one exchange of two labels drawn at random (a ≠ b)
    u = torch.rand(c, len(pairs), generator=gen, device=stats.device, dtype=counts.dtype)
    for i, (a, b) in enumerate(pairs):
        trial = perm.clone()
        _swap(trial, a, b, torch.ones(c, dtype=torch.bool, device=stats.device))
        proposed = log_stick_prior(torch.gather(counts, 1, trial), gamma)  # (C,)
        accept = torch.log(u[:, i]) < proposed - current
        perm = torch.where(accept[:, None], trial, perm)
        current = torch.where(accept, proposed, current)
    return torch.gather(stats, 1, perm[..., None].expand_as(stats)), perm
