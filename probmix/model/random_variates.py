"""Gamma and Wishart variates drawn from one explicit ``torch.Generator``.

Every draw of the conjugate engines (the Gibbs sampler's parameter block, the
draws from CAVI's q) goes through these two samplers, so a seed fixes all of
them and the global torch RNG is never touched:

- :func:`log_standard_gamma`: log G for G ~ Gamma(a, 1), Marsaglia & Tsang's
  squeeze method (2000) on normals and uniforms of the generator. Dirichlet and
  Beta variates are normalised Gammas, formed in log space from these (see
  :mod:`probmix.model.weights`) so tiny concentrations do not underflow.
- :func:`bartlett_factor` / :func:`wishart_precision_cholesky`: the Bartlett
  decomposition (Bartlett 1933) in its upper-triangular form, which yields the
  precision's Cholesky factor directly.
"""

from __future__ import annotations

import math

import torch

from probmix.exceptions import DegenerateCovarianceError

__all__ = ["log_standard_gamma", "bartlett_shapes", "bartlett_factor",
           "wishart_precision_cholesky", "scale_cholesky"]

_GAMMA_CANDIDATES = 4  # Marsaglia-Tsang proposals per variate and round (each accepted w.p. > 0.95)


def log_standard_gamma(concentration: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """log G for G ~ Gamma(concentration, 1), elementwise, drawn from ``gen`` only.

    Marsaglia & Tsang's squeeze method: for a ≥ 1 with d = a - 1/3, c = 1/√(9d), propose
    v = (1 + c ε)³ with ε ~ N(0, 1) and accept when log u < ε²/2 + d - d v + d log v; then
    G = d v. For a < 1, G = G' U^(1/a) with G' ~ Gamma(a + 1) (log G = log G' + log U / a,
    exact even where G underflows). Four proposals per variate are drawn in one batch and
    the first accepted one taken; the rare variates with none accepted get another round.

    Parameters
    ----------
    concentration : Tensor (...), positive
    gen : torch.Generator

    Returns
    -------
    Tensor (...), same dtype and device
    """
    a = concentration
    opts = dict(dtype=a.dtype, device=a.device, generator=gen)
    tiny = torch.finfo(a.dtype).tiny
    boost = a < 1
    d = torch.where(boost, a + 1, a) - 1.0 / 3.0  # (...)
    c = torch.rsqrt(9.0 * d)  # (...)
    log_g = torch.empty_like(a)  # (...)
    pending = torch.ones_like(a, dtype=torch.bool)  # (...)
    while True:
        eps = torch.randn((_GAMMA_CANDIDATES, *a.shape), **opts)  # (R, ...)
        u = torch.rand((_GAMMA_CANDIDATES, *a.shape), **opts)  # (R, ...)
        v = (1.0 + c * eps) ** 3  # (R, ...)
        log_v = torch.log(v.clamp_min(tiny))  # (R, ...)
        accept = (v > 0) & (torch.log(u) < 0.5 * eps * eps + d - d * v + d * log_v)  # (R, ...)
        first = accept.to(torch.uint8).argmax(0, keepdim=True)  # (1, ...) first accepted
        found = accept.any(0)  # (...)
        log_g = torch.where(pending & found, torch.log(d) + log_v.gather(0, first)[0], log_g)
        pending = pending & ~found
        if not bool(pending.any()):
            break
    u_boost = torch.rand(a.shape, **opts).clamp_min(tiny)  # (...)
    return torch.where(boost, log_g + torch.log(u_boost) / a, log_g)


def scale_cholesky(psi: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor R (..., D, D) of a posterior scale matrix ψ = R Rᵀ.

    Raises
    ------
    DegenerateCovarianceError
        When ψ lost definiteness to rounding.
    """
    chol, info = torch.linalg.cholesky_ex(psi)  # (..., D, D) lower
    if bool((info != 0).any()):
        raise DegenerateCovarianceError(
            "A posterior Wishart scale matrix W⁻¹ = Ψ₀ + scatter is not positive definite "
            "(round-off on nearly collinear data). Standardise or de-duplicate the features, "
            "pass a better conditioned Prior(scale=...), or use covariance='diag'.")
    return chol


def bartlett_shapes(dof: torch.Tensor, d: int) -> torch.Tensor:
    """Gamma shapes (..., D) of the Bartlett diagonal: B_ii² / 2 ~ Gamma((dof - D + 1 + i) / 2)."""
    i = torch.arange(d, dtype=dof.dtype, device=dof.device)
    return 0.5 * (dof[..., None] - d + 1 + i)


def bartlett_factor(log_gamma: torch.Tensor, chol: torch.Tensor,
                    gen: torch.Generator) -> torch.Tensor:
    """Upper U = R⁻ᵀ B, U Uᵀ ~ Wishart(dof, precision_matrix = R Rᵀ), from given Gamma draws.

    Parameters
    ----------
    log_gamma : Tensor (..., D)
        log G_i with G_i ~ Gamma(:func:`bartlett_shapes` (dof, D)), drawn by the caller (so
        that they can share one batch with other Gamma variates).
    chol : Tensor (..., D, D)
        Lower Cholesky factor R of the scale ψ (:func:`scale_cholesky`).
    gen : torch.Generator
        Source of the standard normals above the diagonal.

    Returns
    -------
    U : Tensor (..., D, D), upper triangular with positive diagonal
    """
    chi = torch.exp(0.5 * (math.log(2.0) + log_gamma))  # (..., D): B_ii = √(2 G_i) ~ χ
    noise = torch.randn(chol.shape, dtype=chol.dtype, device=chol.device, generator=gen)
    bartlett = torch.triu(noise, diagonal=1) + torch.diag_embed(chi)  # (..., D, D) upper
    return torch.linalg.solve_triangular(chol.mT, bartlett, upper=True)  # (..., D, D) upper


def wishart_precision_cholesky(dof: torch.Tensor, psi: torch.Tensor,
                               gen: torch.Generator) -> torch.Tensor:
    """Upper-triangular U with U Uᵀ ~ Wishart(dof, precision_matrix=psi), batched.

    Bartlett decomposition in upper-triangular form: B upper triangular with
    B_ii² ~ χ²(dof - D + 1 + i) (i = 0..D-1) and standard normal entries above the diagonal
    has B Bᵀ ~ Wishart(dof, I) (the usual lower-triangular form with the order of the
    coordinates reversed); with psi = R Rᵀ (R lower), U = R⁻ᵀ B is upper triangular with
    positive diagonal and U Uᵀ ~ Wishart(dof, psi⁻¹): scikit-learn's convention for the
    precision Cholesky factor.

    Parameters
    ----------
    dof : Tensor (...), > D - 1
    psi : Tensor (..., D, D), symmetric positive definite
    gen : torch.Generator

    Returns
    -------
    U : Tensor (..., D, D)
    """
    log_g = log_standard_gamma(bartlett_shapes(dof, psi.shape[-1]), gen)  # (..., D)
    return bartlett_factor(log_g, scale_cholesky(psi), gen)
