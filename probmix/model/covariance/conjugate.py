"""The conjugate posterior of the precisions: Wishart (full, tied) and Gamma (diag, spherical).

A covariance family names one of these as its ``conjugate`` attribute; the
family's generic methods (:class:`~probmix.model.covariance.base.CovarianceFamily`
``posterior``, ``posterior_mode``, ``expectations``, ``kl_to_prior``, ``draw``)
hand the precision part to it. Notation as in :mod:`probmix.model.priors`: prior
(ν₀, Ψ₀); per component the count n_k and the posterior scatter
C_k = S_k + β₀ n_k / β_k (x̄_k - m₀)(x̄_k - m₀)ᵀ in the family's native shape::

    Wishart   ν = ν₀ + n_k,           W⁻¹ = Ψ₀ + C_k           (tied: n = N, C = Σ_k C_k)
    Gamma     a = (ν₀ + n_k) / 2,     b = (Ψ₀_dd + C_k,dd) / 2  (diag, per feature)
              a = D (ν₀ + n_k) / 2,   b = (tr Ψ₀ + tr C_k) / 2  (spherical)

Both are stored as a pair (``shape``, ``inv``) = (ν, W⁻¹) or (a, b) that updates
additively. Expectations::

    Wishart: E[Λ] = ν W,  E[log |Λ|] = Σ_{i<D} ψ((ν - i)/2) + D log 2 + log |W|,  E[Σ] = W⁻¹/(ν - D - 1)
    Gamma:   E[λ] = a / b, E[log λ] = ψ(a) - log b,                              E[1/λ] = b / (a - 1)

The joint mode of (μ, Λ) (EM's MAP M-step) counts the mean's Normal factor, which adds
|Λ|^{1/2} per component sharing Λ (Wishart) or λ^{h} with h = 1/2 (diag) or D/2
(spherical): Σ_mode = W⁻¹ / (ν - D - 1 + #means) and b / (a - 1 + h).
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Gamma, kl_divergence

from probmix.model.random_variates import bartlett_factor, bartlett_shapes, scale_cholesky

__all__ = ["WishartPrecision", "GammaPrecision"]


def _multi_digamma(x: torch.Tensor, d: int) -> torch.Tensor:
    """ψ_D(x) = Σ_{i<D} ψ(x - i/2), elementwise over x (...,)."""
    half = torch.arange(d, dtype=x.dtype, device=x.device) / 2
    return torch.digamma(x[..., None] - half).sum(-1)


class WishartPrecision:
    """Λ ~ Wishart(ν, W) per component (full, ``shape`` (..., K)) or shared (tied, (...,)).

    ``inv`` = W⁻¹ is (..., K, D, D) or (..., D, D).

    Parameters
    ----------
    tied : bool
        One precision shared by all components.
    """

    names = ("dof", "inverse_scale")

    def __init__(self, *, tied: bool):
        self.tied = tied

    def update(self, prior, nk: torch.Tensor, scatter: torch.Tensor, shrink: torch.Tensor, d: int):
        """(ν, W⁻¹) from counts nk (..., K) and C = scatter + shrink (native shapes).

        C comes in its two parts, the scatter S about the sample means and the shrinkage
        B = β₀ n / β (x̄ - m₀)(x̄ - m₀)ᵀ, so that W⁻¹ is summed as (Ψ₀ + S) + B.
        """
        n = nk.sum(-1) if self.tied else nk  # (...,) tied, else (..., K)
        return prior.dof + n, prior.scale + scatter + shrink

    def mode_covariance(self, shape, inv, k: int, d: int) -> torch.Tensor:
        """Covariance at the joint mode of (μ, Λ): W⁻¹ / (ν - D - 1 + #means sharing Λ)."""
        return inv / (shape - d - 1 + (k if self.tied else 1))[..., None, None]

    def ml_covariance(self, scatter, nk: torch.Tensor, d: int) -> torch.Tensor:
        """Maximum-likelihood covariance: scatter / n (tied: / N)."""
        n = nk.sum(-1) if self.tied else nk
        return scatter / n[..., None, None]

    def inverse_mean_precision(self, shape, inv) -> torch.Tensor:
        """(E[Λ])⁻¹ = W⁻¹ / ν in the native covariance shape."""
        return inv / shape[..., None, None]

    def log_det_gap(self, shape, inv, d: int) -> torch.Tensor:
        """E[log |Λ|] - log |E[Λ]| = ψ_D(ν/2) + D log 2 - D log ν, shape of ``shape``."""
        return _multi_digamma(shape / 2, d) + d * math.log(2.0) - d * torch.log(shape)

    def kl(self, shape, inv, prior, d: int) -> torch.Tensor:
        """Σ KL(Wishart(ν, W) ‖ Wishart(ν₀, Ψ₀⁻¹)) over all precisions, ()."""
        nu0, psi0 = prior.dof, prior.scale
        chol = torch.linalg.cholesky(inv)  # (..., D, D): W⁻¹ = L Lᵀ
        log_det_inv = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (...,)
        trace = torch.diagonal(torch.cholesky_solve(psi0.expand_as(inv), chol),
                               dim1=-2, dim2=-1).sum(-1)  # (...,): tr(W Ψ₀)
        log_det_psi0 = torch.logdet(psi0)
        kl = (0.5 * (shape - nu0) * _multi_digamma(shape / 2, d)
              - torch.mvlgamma(shape / 2, d) + torch.mvlgamma(nu0 / 2, d)
              - 0.5 * nu0 * (log_det_psi0 - log_det_inv) + 0.5 * shape * (trace - d))
        return kl.sum()

    def mean_covariance(self, shape, inv, d: int):
        """E[Σ] = W⁻¹ / (ν - D - 1) where ν > D + 1, else (E[Λ])⁻¹ = W⁻¹ / ν; and where it exists."""
        exists = shape > d + 1
        denom = torch.where(exists, shape - d - 1, shape)
        return inv / denom[..., None, None], exists

    def gamma_shapes(self, shape, d: int) -> torch.Tensor:
        """Shapes (..., [K,] D) of the Gamma variates of one draw (the Bartlett diagonal)."""
        return bartlett_shapes(shape, d)

    def precision_cholesky(self, log_gamma, shape, inv, gen: torch.Generator) -> torch.Tensor:
        """A draw of the upper Cholesky factor U (Λ = U Uᵀ), native shape, from the Gammas."""
        return bartlett_factor(log_gamma, scale_cholesky(inv), gen)

    def mean_noise(self, prec_chol: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """U⁻ᵀ ε ~ N(0, Λ⁻¹) per component from ε (..., K, D)."""
        if self.tied:  # one U (..., D, D) for all K right-hand sides
            return torch.linalg.solve_triangular(prec_chol.mT, eps.mT, upper=False).mT
        return torch.linalg.solve_triangular(prec_chol.mT, eps[..., None], upper=False)[..., 0]


class GammaPrecision:
    """λ ~ Gamma(a, b) (shape, rate) per component and feature (diag, (..., K, D)) or per
    component (spherical, (..., K)).

    Parameters
    ----------
    per_feature : bool
        One precision per feature (diag) rather than one per component (spherical).
    """

    names = ("shape", "rate")
    tied = False

    def __init__(self, *, per_feature: bool):
        self.per_feature = per_feature

    def _prior_scale(self, prior) -> torch.Tensor:
        """diag(Ψ₀) (D,) for diag, tr Ψ₀ () for spherical."""
        return torch.diagonal(prior.scale) if self.per_feature else torch.trace(prior.scale)

    def prior(self, prior, d: int):
        """(a₀, b₀): (ν₀/2, diag(Ψ₀)/2) for diag, (ν₀ D/2, tr Ψ₀ / 2) for spherical."""
        return self._shape(prior.dof, d), 0.5 * self._prior_scale(prior)

    def _shape(self, dof, d: int):
        return 0.5 * dof if self.per_feature else 0.5 * d * dof

    def update(self, prior, nk: torch.Tensor, scatter: torch.Tensor, shrink: torch.Tensor, d: int):
        """(a, b) from counts nk (..., K) and C = scatter + shrink ((..., K, D) or (..., K)).

        b is summed as ((Ψ₀ + S) + B) / 2, see :meth:`WishartPrecision.update`.
        """
        shape = self._shape(prior.dof + nk, d)  # (..., K)
        rate = 0.5 * (self._prior_scale(prior) + scatter + shrink)
        if self.per_feature:
            shape = shape[..., None].expand_as(rate).clone()  # (..., K, D)
        return shape, rate

    def _mean_exponent(self, d: int) -> float:
        """h: the mean's Normal factor contributes λ^h (1/2 per feature, D/2 spherical)."""
        return 0.5 if self.per_feature else 0.5 * d

    def mode_covariance(self, shape, inv, k: int, d: int) -> torch.Tensor:
        """Covariance at the joint mode of (μ, λ): b / (a - 1 + h)."""
        return inv / (shape - 1 + self._mean_exponent(d))

    def ml_covariance(self, scatter, nk: torch.Tensor, d: int) -> torch.Tensor:
        """Maximum-likelihood variance: scatter / n (diag), scatter / (D n) (spherical)."""
        return scatter / nk[..., None] if self.per_feature else scatter / (d * nk)

    def inverse_mean_precision(self, shape, inv) -> torch.Tensor:
        """(E[λ])⁻¹ = b / a in the native covariance shape."""
        return inv / shape

    def log_det_gap(self, shape, inv, d: int) -> torch.Tensor:
        """E[log |Λ_k|] - log |E[Λ_k]|: Σ_d ψ(a_kd) - log a_kd (diag), D (ψ(a_k) - log a_k)."""
        gap = torch.digamma(shape) - torch.log(shape)
        return gap.sum(-1) if self.per_feature else d * gap  # (..., K)

    def kl(self, shape, inv, prior, d: int) -> torch.Tensor:
        """Σ KL(Gamma(a, b) ‖ Gamma(a₀, b₀)) over components (and features), ()."""
        a0, b0 = self.prior(prior, d)
        prior_gamma = Gamma(a0.expand_as(shape), b0.expand_as(inv), validate_args=False)
        return kl_divergence(Gamma(shape, inv, validate_args=False), prior_gamma).sum()

    def mean_covariance(self, shape, inv, d: int):
        """E[1/λ] = b / (a - 1) where a > 1, else (E[λ])⁻¹ = b / a; and where it exists."""
        exists = shape > 1
        return inv / torch.where(exists, shape - 1, shape), exists

    def gamma_shapes(self, shape, d: int) -> torch.Tensor:
        """Shapes of the Gamma variates of one draw: a itself."""
        return shape

    def precision_cholesky(self, log_gamma, shape, inv, gen: torch.Generator) -> torch.Tensor:
        """1/σ = √λ with λ = G / b, from log G (the shape of ``inv``)."""
        floor = math.sqrt(torch.finfo(inv.dtype).tiny)  # λ = (1/σ)² stays a normal number
        return torch.exp(0.5 * (log_gamma - torch.log(inv))).clamp_min(floor)

    def mean_noise(self, prec_chol: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """ε / √λ ~ N(0, 1/λ) per component from ε (..., K, D)."""
        return eps / (prec_chol if self.per_feature else prec_chol[..., None])
