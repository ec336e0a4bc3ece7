"""The conjugate posterior of the mixture weights, for every engine.

Given the (responsibility-weighted) counts N (..., K) of the components:

- Dirichlet(α) prior: the posterior is Dirichlet(α + N); concentrations (..., K).
- truncated stick-breaking prior with concentration γ (``weights_prior="dirichlet_process"``,
  K - 1 sticks v_j ~ Beta(1, γ), the remainder to the last component): the posterior has
  independent sticks v_j ~ Beta(1 + N_j, γ + Σ_{i>j} N_i); concentrations (..., 2, K - 1),
  row 0 the first and row 1 the second Beta parameter.

The prior's ``stick_breaking`` flag (:class:`~probmix.model.priors.ResolvedPrior`) picks the
form. This module holds the update, the mode (EM's M-step of the weights), E[log π] and E[π]
and the KL to the prior (CAVI), and a draw from Gamma variates (Gibbs and CAVI's draws:
Dirichlet and Beta variates as normalised Gammas, formed in log space).
"""

from __future__ import annotations

import torch
from torch.distributions import Beta, Dirichlet, kl_divergence

__all__ = ["stick_breaking", "sticks_from_weights", "tail_sums", "posterior_concentration",
           "posterior_mode", "expected_log_weights", "mean_weights", "kl_to_prior",
           "gamma_shapes", "log_weights_from_gammas"]


def stick_breaking(sticks: torch.Tensor) -> torch.Tensor:
    """Mixture weights (..., K) from K - 1 stick fractions (..., K - 1) in (0, 1)."""
    rest = torch.cumprod(1 - sticks, dim=-1)  # (..., K-1): mass left after each break
    ones = torch.ones_like(sticks[..., :1])
    return torch.cat([sticks, ones], -1) * torch.cat([ones, rest], -1)


def sticks_from_weights(weights: torch.Tensor) -> torch.Tensor:
    """Stick fractions v (..., K-1) with weights = stick_breaking(v)."""
    left = 1 - torch.cumsum(weights, -1)[..., :-2]  # mass left before break k, k >= 1
    left = torch.cat([torch.ones_like(weights[..., :1]), left], -1).clamp_min(
        torch.finfo(weights.dtype).tiny)
    return (weights[..., :-1] / left).clamp(0, 1)


def tail_sums(counts: torch.Tensor) -> torch.Tensor:
    """Σ_{i>j} counts_i for j < K - 1, shape (..., K - 1), from counts (..., K)."""
    return counts.flip(-1).cumsum(-1).flip(-1)[..., 1:]


def posterior_concentration(nk: torch.Tensor, prior) -> torch.Tensor:
    """Dirichlet α + N (..., K), or the sticks' Beta (1 + N_j, γ + Σ_{i>j} N_i) as (..., 2, K-1)."""
    if not prior.stick_breaking:
        return prior.alpha + nk  # (..., K)
    return torch.stack([1.0 + nk[..., :-1], prior.alpha[:-1] + tail_sums(nk)], -2)


def posterior_mode(nk: torch.Tensor, prior) -> torch.Tensor:
    """Mixture weights (..., K) at the mode given the counts nk (..., K); n_k / N when flat.

    Dirichlet(α): (n_k + α - 1) / (N + Σα - K). Stick-breaking with concentration γ: each
    stick's mode v_k = n_k / (n_k + t_k + γ - 1), with t_k = Σ_{j>k} n_j the counts after k.
    """
    if prior is None:
        return nk / nk.sum(-1, keepdim=True)
    if prior.stick_breaking:
        head = nk[..., :-1]
        denom = head + tail_sums(nk) + prior.alpha[:-1] - 1
        v = torch.where(denom > 0, head / denom.clamp_min(torch.finfo(nk.dtype).tiny),
                        torch.zeros_like(head)).clamp(0, 1)
        return stick_breaking(v)
    num = (nk + prior.alpha - 1).clamp_min(0)
    return num / num.sum(-1, keepdim=True)


def expected_log_weights(conc: torch.Tensor, stick: bool) -> torch.Tensor:
    """E[log π_k] under the posterior with concentrations ``conc``, shape (..., K)."""
    if not stick:
        return torch.digamma(conc) - torch.digamma(conc.sum(-1, keepdim=True))  # (..., K)
    total = torch.digamma(conc.sum(-2))  # (..., K-1)
    log_v = torch.digamma(conc[..., 0, :]) - total  # (..., K-1): E[log v_j]
    log_rest = torch.digamma(conc[..., 1, :]) - total  # (..., K-1): E[log(1 - v_j)]
    zero = torch.zeros_like(log_v[..., :1])
    return torch.cat([log_v, zero], -1) + torch.cat([zero, log_rest.cumsum(-1)], -1)  # (..., K)


def mean_weights(conc: torch.Tensor, stick: bool) -> torch.Tensor:
    """E[π], shape (..., K)."""
    if not stick:
        return conc / conc.sum(-1, keepdim=True)
    return stick_breaking(conc[..., 0, :] / conc.sum(-2))  # E[v_k] Π_{j<k} E[1 - v_j]


def kl_to_prior(conc: torch.Tensor, prior) -> torch.Tensor:
    """KL(q(weights) ‖ p(weights)) summed (over the sticks for the stick-breaking prior), ()."""
    if not prior.stick_breaking:
        return kl_divergence(Dirichlet(conc, validate_args=False),
                             Dirichlet(prior.alpha, validate_args=False)).sum()
    gamma = prior.alpha[:-1]
    return kl_divergence(Beta(conc[..., 0, :], conc[..., 1, :], validate_args=False),
                         Beta(torch.ones_like(gamma), gamma, validate_args=False)).sum()


def gamma_shapes(conc: torch.Tensor, stick: bool) -> torch.Tensor:
    """Shapes (..., G) of the Gamma variates a draw of the weights needs (G = K or 2(K-1))."""
    return conc.flatten(-2) if stick else conc


def log_weights_from_gammas(log_g: torch.Tensor, stick: bool) -> torch.Tensor:
    """log π (..., K) from log G, G ~ Gamma(:func:`gamma_shapes`): one posterior draw.

    Dirichlet: π = G / Σ G. Sticks: v_j = G_j / (G_j + G'_j) ~ Beta, then stick-breaking; all
    in log space, so tiny concentrations do not underflow.
    """
    if not stick:
        return torch.log_softmax(log_g, -1)  # (..., K)
    k1 = log_g.shape[-1] // 2
    first, second = log_g[..., :k1], log_g[..., k1:]  # (..., K-1) each
    log_v = torch.nn.functional.logsigmoid(first - second)  # (..., K-1): log v_j
    log_rest = torch.nn.functional.logsigmoid(second - first).cumsum(-1)  # Σ_{i<=j} log(1 - v_i)
    zero = torch.zeros_like(log_v[..., :1])  # (..., 1)
    return torch.cat([log_v, zero], -1) + torch.cat([zero, log_rest], -1)  # (..., K)
