"""The interface every covariance family implements, and its generic conjugate methods.

Native shapes for K components in D dimensions (leading batch dims ``...``,
e.g. restarts or chains, are allowed everywhere):

=========  ==============  ====================================
family     covariance      precision / precision Cholesky
=========  ==============  ====================================
full       (..., K, D, D)  (..., K, D, D)
diag       (..., K, D)     (..., K, D)
spherical  (..., K)        (..., K)
tied       (..., D, D)     (..., D, D)
=========  ==============  ====================================

The precision Cholesky factor follows scikit-learn: an upper-triangular U with
precision = U Uᵀ (for full and tied), 1/sqrt(variance) otherwise.

Exponential-family form. With Φ(x) = [1, x, q(x)] where q(x) are the family's
quadratic features (vech(x xᵀ) for full/tied, x² for diag, ‖x‖² for
spherical), log N(x | μ_k, Λ_k) = Φ(x) · w_k, so the E-step of every component
is one matrix product and the M-step's sufficient statistics are respᵀ Φ(x).

Conjugate posterior. From summed statistics (counts nk, sums sx, quadratic sums
sq) and a :class:`~probmix.model.priors.ResolvedPrior`, :meth:`CovarianceFamily.posterior`
gives q(μ_k | Λ_k) = N(m_k, (β_k Λ_k)⁻¹), β_k = β₀ + n_k, m_k = (β₀ m₀ + s_k) / β_k,
and the precision posterior of the family's ``conjugate``
(:mod:`probmix.model.covariance.conjugate`). EM takes its mode, CAVI its
expectations and KL, Gibbs (and CAVI's draws) a draw.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
from pyro.ops.indexing import Vindex

from probmix.exceptions import DegenerateCovarianceError
from probmix.model.priors import ResolvedPrior

__all__ = ["CovarianceFamily", "ComponentPosterior", "Expectations", "raise_if_degenerate"]


def raise_if_degenerate(ok: torch.Tensor, reg_covar: float) -> None:
    """Raise the reg_covar advice when no batch member has positive definite covariances."""
    if not bool(ok.any()):
        raise DegenerateCovarianceError(
            "Fitting the mixture failed: a component's covariance is not positive definite "
            "(a component collapsed onto too few or collinear points). Increase reg_covar "
            f"(now {reg_covar:g}), use fewer components, or a 'diag'/'spherical'/'tied' covariance."
        )


class ComponentPosterior(NamedTuple):
    """Conjugate posterior of the means and precisions (leading batch dims allowed).

    means : (..., K, D) m_k; beta : (..., K) β_k; shape, inv : the precision posterior's
    (ν, W⁻¹) or (a, b), see :mod:`probmix.model.covariance.conjugate`.
    """

    means: torch.Tensor
    beta: torch.Tensor
    shape: torch.Tensor
    inv: torch.Tensor


class Expectations(NamedTuple):
    """E[Λ] (native) with its Cholesky factor, and the gap E[log|Λ_k|] - log|E[Λ_k]| (..., K)."""

    prec_chol: torch.Tensor
    precision: torch.Tensor
    log_det_gap: torch.Tensor


class CovarianceFamily(ABC):
    """Interface of a covariance family; see the module docstring for shapes.

    Subclasses set ``name``, ``conjugate`` (a precision posterior of
    :mod:`probmix.model.covariance.conjugate`, or an object with the same methods) and
    ``precision_event_dims``, and implement the abstract methods.
    """

    name: str
    conjugate = None
    #: number of trailing dims of one component's precision (2 full, 1 diag, 0 spherical)
    precision_event_dims: int = 2

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # --- shapes and counts -------------------------------------------------------------
    @abstractmethod
    def cov_shape(self, k: int, d: int) -> tuple[int, ...]:
        """Native covariance shape for K components in D dimensions."""

    @abstractmethod
    def n_cov_parameters(self, k: int, d: int) -> int:
        """Number of free covariance parameters."""

    def n_parameters(self, k: int, d: int) -> int:
        """Free parameters of the mixture: weights, means and covariances."""
        return (k - 1) + k * d + self.n_cov_parameters(k, d)

    @abstractmethod
    def to_full(self, cov: torch.Tensor, k: int, d: int) -> torch.Tensor:
        """Native covariances -> full matrices (..., K, D, D)."""

    @abstractmethod
    def from_full(self, cov: torch.Tensor) -> torch.Tensor:
        """Full (..., K, D, D) matrices -> native covariances (must belong to the family)."""

    def default_prior_dof(self, d: int) -> float:
        """ν₀ of ``prior="default"``: D + 2, so the MAP covariance divides by n_k + 2.

        Families whose precision prior is not a Wishart override it so that their MAP also
        divides by n_k + 2 per variance (see :mod:`probmix.model.priors`).
        """
        return d + 2.0

    def min_prior_dof(self, d: int) -> float:
        """ν₀ must exceed this for the precision prior to be proper (D - 1 for a Wishart)."""
        return d - 1.0

    def column_scaled(self) -> "CovarianceFamily":
        """The family of S Σ S for a diagonal S (rescaled columns): this family by default."""
        return self

    # --- precisions ----------------------------------------------------------------------
    @abstractmethod
    def precision_cholesky(self, cov: torch.Tensor):
        """``(U, ok)``: the precision Cholesky factor of native covariances, and which factorised."""

    @abstractmethod
    def precision_from_cholesky(self, prec_chol: torch.Tensor) -> torch.Tensor:
        """Native precision from its Cholesky factor."""

    @abstractmethod
    def covariance_from_precision(self, prec: torch.Tensor) -> torch.Tensor:
        """Native covariance from native precision."""

    @abstractmethod
    def log_det_precision(self, prec_chol: torch.Tensor, k: int, d: int) -> torch.Tensor:
        """log |Λ_k| from the precision Cholesky factor, shape (..., K)."""

    @abstractmethod
    def precision_times(self, prec: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """Λ_k μ_k for means (..., K, D), shape (..., K, D)."""

    # --- exponential-family form -----------------------------------------------------------
    @abstractmethod
    def quadratic_features(self, xt: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Write q(x) feature-major into ``out`` (F_q, n) from ``xt`` (D, n); return ``out``."""

    @abstractmethod
    def quadratic_weights(self, prec: torch.Tensor, k: int) -> torch.Tensor:
        """Weights of q(x) in log N(x | μ_k, Λ_k), shape (..., K, F_q)."""

    @abstractmethod
    def n_quadratic(self, d: int) -> int:
        """F_q: number of quadratic features in D dimensions."""

    def natural_weights(self, means: torch.Tensor, prec_chol: torch.Tensor, *,
                        log_weights: torch.Tensor | None = None) -> torch.Tensor:
        """W (..., K, 1 + D + F_q) with log π_k + log N(x | μ_k, Λ_k) = [1, x, q(x)] · W_k.

        Parameters
        ----------
        means : Tensor (..., K, D)
        prec_chol : Tensor, native precision Cholesky shape
        log_weights : Tensor (..., K), optional
            Added to the bias (omit for the component densities alone).
        """
        k, d = means.shape[-2:]
        prec = self.precision_from_cholesky(prec_chol)
        lin = self.precision_times(prec, means)  # (..., K, D)
        bias = (0.5 * self.log_det_precision(prec_chol, k, d) - 0.5 * d * math.log(2 * math.pi)
                - 0.5 * (lin * means).sum(-1))  # (..., K)
        if log_weights is not None:
            bias = bias + log_weights
        return torch.cat([bias[..., None], lin, self.quadratic_weights(prec, k)], dim=-1)

    def n_features_from_stats(self, width: int) -> int:
        """D from the width F = 1 + D + F_q(D) of Φ."""
        return next(d for d in range(1, width) if 1 + d + self.n_quadratic(d) == width)

    def features(self, xt: torch.Tensor) -> torch.Tensor:
        """Φ(x) = [1, x, q(x)] stored feature-major, shape (1 + D + F_q, n), from ``xt`` (D, n).

        Feature-major rows keep every matrix product and the reduction over components
        contiguous along the data axis, which is what makes the E-step fast.
        """
        d, n = xt.shape
        out = xt.new_empty(1 + d + self.n_quadratic(d), n)
        out[0] = 1.0
        out[1:1 + d] = xt
        self.quadratic_features(xt, out[1 + d:])
        return out

    # --- scatter -------------------------------------------------------------------------
    @abstractmethod
    def scatter(self, nk: torch.Tensor, sx: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
        """Weighted scatter about each component mean, native covariance shape.

        nk (..., K) counts (positive), sx (..., K, D) weighted sums, sq (..., K, F_q) weighted
        quadratic features.
        """

    @abstractmethod
    def outer(self, v: torch.Tensor) -> torch.Tensor:
        """v vᵀ for v (..., K, D), reduced to the native covariance shape."""

    @abstractmethod
    def add_ridge(self, cov: torch.Tensor, reg) -> torch.Tensor:
        """cov + diag(reg) in the native shape; ``reg`` a float or per-feature (D,) tensor
        (its mean for a family with one variance per component)."""

    def log_prior_density(self, prior: ResolvedPrior, means: torch.Tensor,
                          prec: torch.Tensor) -> torch.Tensor:
        """log p(means, precisions) under ``prior``, shape (...,) for means (..., K, D)."""
        k, d = means.shape[-2:]
        lp_prec = self.precision_prior(prior, k, d).log_prob(prec)
        lp_prec = lp_prec if self.tied else lp_prec.sum(-1)
        return lp_prec + self.mean_prior(prior, prec, k, d).log_prob(means).sum(-1)

    # --- the conjugate posterior ----------------------------------------------------------
    def posterior(self, nk, sx, sq, prior: ResolvedPrior, *, ridge: float = 0.0,
                  conjugate=None) -> ComponentPosterior:
        """Conjugate posterior of means and precisions from summed statistics.

        Parameters
        ----------
        nk : Tensor (..., K)
            Counts (0 allowed: that component's posterior is its prior).
        sx : Tensor (..., K, D)
        sq : Tensor (..., K, F_q)
        prior : ResolvedPrior
        ridge : float
            Adds n_k · ridge · I to each scatter (scikit-learn's ``reg_covar`` of
            ``BayesianGaussianMixture``); 0 is the exact update.
        conjugate : precision posterior, optional
            Used instead of the family's own ``conjugate`` (the constrained families take the
            unconstrained Wishart posterior's scale and count for their M-step).

        Returns
        -------
        ComponentPosterior
        """
        d = sx.shape[-1]
        if ridge > 0:  # Σ_i q(e_i) is q's image of the identity: I, ones (diag), D (spherical)
            eye = torch.eye(d, dtype=sq.dtype, device=sq.device)
            sq = sq + ridge * nk[..., None] * self.features(eye)[1 + d:].sum(1)  # (..., K, F_q)
        n_div = torch.where(nk > 0, nk, torch.ones_like(nk))  # empty: sx = sq = 0, so 0 / 1
        beta0, m0 = prior.mean_precision, prior.mean_loc
        beta = beta0 + nk  # (..., K)
        means = (beta0 * m0 + sx) / beta[..., None]  # (..., K, D)
        delta = (sx / n_div[..., None] - m0) * torch.sqrt(beta0 * nk / beta)[..., None]
        # C_k = S_k + B_k, B_k = β₀ n_k / β_k (x̄_k - m₀)(x̄_k - m₀)ᵀ, native shape
        conjugate = self.conjugate if conjugate is None else conjugate
        shape, inv = conjugate.update(prior, nk, self.scatter(n_div, sx, sq), self.outer(delta), d)
        return ComponentPosterior(means, beta, shape, inv)

    def posterior_mode(self, nk, sx, sq, *, prior: ResolvedPrior | None, reg_covar: float,
                       start=None):
        """Means and covariances at the posterior's joint mode (EM's closed-form M-step).

        Parameters
        ----------
        nk : Tensor (..., K)
            Weighted responsibility counts, already floored away from zero.
        sx : Tensor (..., K, D)
        sq : Tensor (..., K, F_q)
        prior : ResolvedPrior or None
            None: maximum likelihood.
        reg_covar : float
            Ridge added to every covariance estimate.
        start : Tensor, native shape, optional
            The current covariances; used by families whose M-step iterates (closed forms
            ignore it).

        Returns
        -------
        means : Tensor (..., K, D)
        cov : Tensor, native shape
        """
        k, d = sx.shape[-2:]
        if prior is None:
            means = sx / nk[..., None]
            cov = self.conjugate.ml_covariance(self.scatter(nk, sx, sq), nk, d)
        else:
            post = self.posterior(nk, sx, sq, prior)
            means, cov = post.means, self.conjugate.mode_covariance(post.shape, post.inv, k, d)
        return means, self.add_ridge(cov, reg_covar)

    def expectations(self, post) -> Expectations:
        """E[Λ] and the log-determinant gap under ``post`` (a :class:`ComponentPosterior`).

        Raises
        ------
        DegenerateCovarianceError
            When E[Λ] lost definiteness to rounding.
        """
        k, d = post.means.shape[-2:]
        inv_mean = self.conjugate.inverse_mean_precision(post.shape, post.inv)  # (E[Λ])⁻¹
        prec_chol, ok = self.precision_cholesky(inv_mean)
        if not bool(ok.all()):
            raise DegenerateCovarianceError(
                "A posterior scale matrix W⁻¹ = Ψ₀ + scatter is not positive definite (it lost "
                "definiteness to rounding). Rescale the data or pass a better conditioned "
                "Prior(scale=...).")
        gap = self.conjugate.log_det_gap(post.shape, post.inv, d)
        gap = gap.reshape(gap.shape + (1,) * (post.beta.ndim - gap.ndim)).expand(
            post.beta.shape)  # (..., K): a shared precision's gap repeated per component
        return Expectations(prec_chol, self.precision_from_cholesky(prec_chol), gap)

    def mean_covariance(self, post):
        """E[Σ] (native) where it exists, else (E[Λ])⁻¹; and where it exists."""
        return self.conjugate.mean_covariance(post.shape, post.inv, post.means.shape[-1])

    def kl_to_prior(self, post, prior: ResolvedPrior, mean_precision: torch.Tensor) -> torch.Tensor:
        """KL(q(means, precisions) ‖ p(means, precisions)), a scalar.

        KL = KL(q(Λ) ‖ p(Λ)) + ½ Σ_k [D (β₀/β_k - 1 - log(β₀/β_k)) + β₀ (m_k - m₀)ᵀ E[Λ_k] (m_k - m₀)],
        with ``mean_precision`` E[Λ] (native) from :meth:`expectations`.
        """
        d = post.means.shape[-1]
        ratio = prior.mean_precision / post.beta  # (..., K)
        diff = post.means - prior.mean_loc  # (..., K, D)
        quad = (self.precision_times(mean_precision, diff) * diff).sum(-1)  # (..., K)
        kl_means = 0.5 * (d * (ratio - 1 - torch.log(ratio)) + prior.mean_precision * quad).sum()
        return self.conjugate.kl(post.shape, post.inv, prior, d) + kl_means

    def draw_shapes(self, post) -> torch.Tensor:
        """Shapes of the Gamma variates one draw from ``post`` needs (leading batch dims kept)."""
        return self.conjugate.gamma_shapes(post.shape, post.means.shape[-1])

    def draw(self, post, log_gamma: torch.Tensor, gen: torch.Generator):
        """One draw of (means, precision Cholesky factor) per batch member of ``post``.

        Parameters
        ----------
        post : ComponentPosterior
        log_gamma : Tensor
            log G with G ~ Gamma(:meth:`draw_shapes`), from
            :func:`~probmix.model.random_variates.log_standard_gamma` (the caller may draw them
            in one batch with the weights').
        gen : torch.Generator
            Source of the remaining (normal) variates.

        Returns
        -------
        means : Tensor (..., K, D)
        prec_chol : Tensor, native shape
        """
        prec_chol = self.conjugate.precision_cholesky(log_gamma, post.shape, post.inv, gen)
        m = post.means
        eps = torch.randn(m.shape, dtype=m.dtype, device=m.device, generator=gen)  # (..., K, D)
        noise = self.conjugate.mean_noise(prec_chol, eps)  # (..., K, D) ~ N(0, Λ⁻¹)
        return m + noise / torch.sqrt(post.beta)[..., None], prec_chol

    # --- Pyro distributions --------------------------------------------------------------
    @abstractmethod
    def precision_prior(self, prior: ResolvedPrior | None, k: int, d: int):
        """Distribution of the ``precisions`` site (batch K, or unbatched for tied)."""

    @abstractmethod
    def mean_prior(self, prior: ResolvedPrior | None, prec: torch.Tensor, k: int, d: int):
        """Distribution of the ``means`` site given the precisions (batch K, event D)."""

    @abstractmethod
    def likelihood(self, loc: torch.Tensor, prec: torch.Tensor):
        """Distribution of one observation (event D) given its component's mean and precision."""

    @property
    def tied(self) -> bool:
        """Whether one precision is shared by all components (sampled outside the plate)."""
        return False

    def component_mask(self, mask: torch.Tensor) -> torch.Tensor | None:
        """A (..., K) component mask shaped to broadcast over native covariances; None if tied."""
        return mask[(...,) + (None,) * self.precision_event_dims]

    def select(self, prec: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The precision of component ``z`` (``z`` may carry enumeration dims)."""
        return Vindex(prec)[(..., z) + (slice(None),) * self.precision_event_dims]
