"""Covariance families of the Gaussian mixture: full, diag, spherical, tied.

Each family is a small object with one interface, used by the Pyro program
(prior and likelihood distributions), the EM engine (sufficient statistics and
the closed-form MAP M-step) and the result type (log-densities, parameter
counts). Nothing elsewhere branches on the family's name.

Native shapes for K components in D dimensions (leading batch dims ``...``,
e.g. restarts, are allowed everywhere):

=========  ============  ====================================
family     covariance    precision / precision Cholesky
=========  ============  ====================================
full       (..., K, D, D)  (..., K, D, D)
diag       (..., K, D)     (..., K, D)
spherical  (..., K)        (..., K)
tied       (..., D, D)     (..., D, D)
=========  ============  ====================================

The precision Cholesky factor follows scikit-learn: an upper-triangular U with
precision = U Uᵀ (for full and tied), 1/sqrt(variance) otherwise.

Exponential-family form. With Φ(x) = [1, x, q(x)] where q(x) are the family's
quadratic features (vech(x xᵀ) for full/tied, x² for diag, ‖x‖² for
spherical), log N(x | μ_k, Λ_k) = Φ(x) · w_k, so the E-step of every component
is one matrix product and the M-step's sufficient statistics are respᵀ Φ(x).
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod

import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex
from torch.distributions import constraints

from probmix.model.transforms import precision_matrix
from probmix.exceptions import DegenerateCovarianceError
from probmix.model.priors import ResolvedPrior

__all__ = ["CovarianceFamily", "FullCovariance", "DiagCovariance", "SphericalCovariance",
           "TiedCovariance", "get_family", "FAMILIES"]


class Wishart(dist.Wishart):
    """Pyro's Wishart with a support that has a registered bijection (see probmix.model.transforms),
    so autoguides and NUTS can work on precision matrices in an unconstrained space."""

    support = precision_matrix


def _eye_like(d: int, ref: torch.Tensor) -> torch.Tensor:
    return torch.eye(d, dtype=ref.dtype, device=ref.device)


def _cholesky_precision(cov: torch.Tensor):
    """Upper precision Cholesky U (precision = U Uᵀ) of covariances (..., D, D).

    Returns ``(U, ok)`` where ``ok`` (...,) marks the matrices that factorised;
    failed ones get the identity so batched computations go on.
    """
    chol, info = torch.linalg.cholesky_ex(cov)
    ok = info == 0
    if not bool(ok.all()):
        chol = torch.where(ok[..., None, None], chol, _eye_like(cov.shape[-1], cov))
    eye = _eye_like(cov.shape[-1], cov).expand_as(chol)
    inv_lower = torch.linalg.solve_triangular(chol, eye, upper=False)
    return inv_lower.transpose(-1, -2), ok


@functools.lru_cache(maxsize=64)
def _vech_layout(d: int, dtype: torch.dtype, device: str):
    """Upper-triangle indices of a D×D matrix and the factors -1/2 (diagonal), -1 (off)."""
    rows, cols = torch.triu_indices(d, d, device=device)
    factor = torch.where(rows == cols, -0.5, -1.0).to(dtype)
    return rows, cols, factor


def _unvech(vech: torch.Tensor, d: int) -> torch.Tensor:
    """(..., d(d+1)/2) upper-triangle entries -> symmetric (..., d, d)."""
    iu = torch.triu_indices(d, d, device=vech.device)
    out = vech.new_zeros(*vech.shape[:-1], d, d)
    out[..., iu[0], iu[1]] = vech
    out[..., iu[1], iu[0]] = vech
    return out


def raise_if_degenerate(ok: torch.Tensor, reg_covar: float) -> None:
    """Raise the reg_covar advice when no batch member has positive definite covariances."""
    if not bool(ok.any()):
        raise DegenerateCovarianceError(
            "Fitting the mixture failed: a component's covariance is not positive definite "
            "(a component collapsed onto too few or collinear points). Increase reg_covar "
            f"(now {reg_covar:g}), use fewer components, or a 'diag'/'spherical'/'tied' covariance."
        )


class CovarianceFamily(ABC):
    """Interface of a covariance family; see the module docstring for shapes."""

    name: str

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

    def natural_weights(self, means: torch.Tensor, prec_chol: torch.Tensor) -> torch.Tensor:
        """W (..., K, 1 + D + F_q) with log N(x | μ_k, Λ_k) = [1, x, q(x)] · W_k."""
        k, d = means.shape[-2:]
        prec = self.precision_from_cholesky(prec_chol)
        lin = self.precision_times(prec, means)  # (..., K, D)
        bias = (0.5 * self.log_det_precision(prec_chol, k, d) - 0.5 * d * math.log(2 * math.pi)
                - 0.5 * (lin * means).sum(-1))  # (..., K)
        return torch.cat([bias[..., None], lin, self.quadratic_weights(prec, k)], dim=-1)

    def n_features_from_stats(self, width: int) -> int:
        """D from the width F = 1 + D + F_q(D) of Φ."""
        return next(d for d in range(1, width) if 1 + d + self.n_quadratic(d) == width)

    @abstractmethod
    def n_quadratic(self, d: int) -> int:
        """F_q: number of quadratic features in D dimensions."""

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

    # --- M-step --------------------------------------------------------------------------
    @abstractmethod
    def scatter(self, nk: torch.Tensor, sx: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
        """Weighted scatter about each component mean, native covariance shape.

        nk (..., K) counts, sx (..., K, D) weighted sums, sq (..., K, F_q) weighted
        quadratic features.
        """

    @abstractmethod
    def map_covariance(self, scatter, shrink_outer, nk, prior: ResolvedPrior | None, d: int):
        """Closed-form MAP covariance (maximum likelihood when ``prior`` is None).

        scatter: from :meth:`scatter`; shrink_outer: β₀n/(β₀+n) (x̄-m₀)(x̄-m₀)ᵀ in the
        native shape (zero without prior).
        """

    @abstractmethod
    def outer(self, v: torch.Tensor) -> torch.Tensor:
        """v vᵀ for v (..., K, D), reduced to the native covariance shape."""

    @abstractmethod
    def add_ridge(self, cov: torch.Tensor, reg: float) -> torch.Tensor:
        """cov + reg · I in the native shape."""

    def m_step(self, nk, sx, sq, *, prior: ResolvedPrior | None, reg_covar: float):
        """Closed-form MAP update of means and covariances from sufficient statistics.

        Parameters
        ----------
        nk : Tensor (..., K)
            Weighted responsibility counts, already floored away from zero.
        sx : Tensor (..., K, D)
        sq : Tensor (..., K, F_q)
        prior : ResolvedPrior or None (maximum likelihood)
        reg_covar : float
            Ridge added to every covariance estimate.

        Returns
        -------
        means : Tensor (..., K, D)
        cov : Tensor, native shape
        """
        d = sx.shape[-1]
        xbar = sx / nk[..., None]
        scatter = self.scatter(nk, sx, sq)
        if prior is None:
            return xbar, self.add_ridge(self.map_covariance(scatter, None, nk, None, d), reg_covar)
        beta, m0 = prior.mean_precision, prior.mean_loc
        means = (beta * m0 + sx) / (beta + nk)[..., None]
        delta = (xbar - m0) * torch.sqrt(beta * nk / (beta + nk))[..., None]
        cov = self.map_covariance(scatter, self.outer(delta), nk, prior, d)
        return means, self.add_ridge(cov, reg_covar)

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

    #: number of trailing dims of one component's precision (2 full, 1 diag, 0 spherical)
    precision_event_dims: int = 2

    def select(self, prec: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The precision of component ``z`` (``z`` may carry enumeration dims)."""
        return Vindex(prec)[(..., z) + (slice(None),) * self.precision_event_dims]


class _MatrixFamily(CovarianceFamily):
    """Shared parts of the families whose covariances are full D×D matrices."""

    def precision_cholesky(self, cov):
        return _cholesky_precision(cov)

    def precision_from_cholesky(self, prec_chol):
        return prec_chol @ prec_chol.transpose(-1, -2)

    def covariance_from_precision(self, prec):
        return torch.cholesky_inverse(torch.linalg.cholesky(prec))

    def n_quadratic(self, d):
        return d * (d + 1) // 2

    def quadratic_features(self, xt, out):
        d, offset = xt.shape[0], 0  # rows in torch.triu_indices order: (i, j >= i)
        for i in range(d):
            torch.mul(xt[i:i + 1], xt[i:], out=out[offset:offset + d - i])
            offset += d - i
        return out

    def _vech_weights(self, prec):
        rows, cols, factor = _vech_layout(prec.shape[-1], prec.dtype, str(prec.device))
        return prec[..., rows, cols] * factor  # off-diagonal terms appear twice in xᵀΛx

    def outer(self, v):
        return v[..., :, None] * v[..., None, :]

    def add_ridge(self, cov, reg):
        return cov + reg * _eye_like(cov.shape[-1], cov)

    def likelihood(self, loc, prec):
        return dist.MultivariateNormal(loc, precision_matrix=prec)


class FullCovariance(_MatrixFamily):
    """Each component has its own full covariance; Normal-Wishart prior."""

    name = "full"

    def cov_shape(self, k, d):
        return (k, d, d)

    def n_cov_parameters(self, k, d):
        return k * d * (d + 1) // 2

    def to_full(self, cov, k, d):
        return cov

    def from_full(self, cov):
        return cov

    def log_det_precision(self, prec_chol, k, d):
        return 2.0 * torch.log(torch.diagonal(prec_chol, dim1=-2, dim2=-1)).sum(-1)

    def precision_times(self, prec, means):
        return (prec @ means[..., None])[..., 0]

    def quadratic_weights(self, prec, k):
        return self._vech_weights(prec)

    def scatter(self, nk, sx, sq):
        return _unvech(sq, sx.shape[-1]) - sx[..., :, None] * (sx / nk[..., None])[..., None, :]

    def map_covariance(self, scatter, shrink_outer, nk, prior, d):
        if prior is None:
            return scatter / nk[..., None, None]
        denom = (nk + prior.dof - d)[..., None, None]
        return (prior.scale + scatter + shrink_outer) / denom

    def precision_prior(self, prior, k, d):
        if prior is None:
            return dist.ImproperUniform(precision_matrix, (k,), (d, d))
        return Wishart(df=prior.dof, precision_matrix=prior.scale).expand([k])

    def mean_prior(self, prior, prec, k, d):
        if prior is None:
            return dist.ImproperUniform(constraints.real_vector, (k,), (d,))
        return dist.MultivariateNormal(prior.mean_loc, precision_matrix=prior.mean_precision * prec)


class TiedCovariance(_MatrixFamily):
    """All components share one full covariance; Wishart prior on the shared precision."""

    name = "tied"

    @property
    def tied(self):
        return True

    def select(self, prec, z):
        return prec

    def component_mask(self, mask):
        return None

    def cov_shape(self, k, d):
        return (d, d)

    def n_cov_parameters(self, k, d):
        return d * (d + 1) // 2

    def to_full(self, cov, k, d):
        return cov.unsqueeze(-3).expand(*cov.shape[:-2], k, *cov.shape[-2:])

    def from_full(self, cov):
        if not bool(torch.allclose(cov, cov[..., :1, :, :].expand_as(cov))):
            raise ValueError("covariances for covariance='tied' must be the same for every component.")
        return cov[..., 0, :, :]

    def log_det_precision(self, prec_chol, k, d):
        logdet = 2.0 * torch.log(torch.diagonal(prec_chol, dim1=-2, dim2=-1)).sum(-1)
        return logdet[..., None].expand(*logdet.shape, k)

    def precision_times(self, prec, means):
        return means @ prec  # Λ symmetric: (Λ μ_k)ᵀ = μ_kᵀ Λ

    def quadratic_weights(self, prec, k):
        w = self._vech_weights(prec)
        return w.unsqueeze(-2).expand(*w.shape[:-1], k, w.shape[-1])

    def scatter(self, nk, sx, sq):
        d = sx.shape[-1]
        total = _unvech(sq.sum(-2), d)
        return total - (sx[..., :, None] * (sx / nk[..., None])[..., None, :]).sum(-3)

    def outer(self, v):
        return (v[..., :, None] * v[..., None, :]).sum(-3)

    def map_covariance(self, scatter, shrink_outer, nk, prior, d):
        n = nk.sum(-1)[..., None, None]
        if prior is None:
            return scatter / n
        k = nk.shape[-1]
        return (prior.scale + scatter + shrink_outer) / (n + k + prior.dof - d - 1)

    def precision_prior(self, prior, k, d):
        if prior is None:
            return dist.ImproperUniform(precision_matrix, (), (d, d))
        return Wishart(df=prior.dof, precision_matrix=prior.scale)

    def mean_prior(self, prior, prec, k, d):
        if prior is None:
            return dist.ImproperUniform(constraints.real_vector, (k,), (d,))
        batch = (*prec.shape[:-2], k)
        return dist.MultivariateNormal(
            prior.mean_loc, precision_matrix=prior.mean_precision * prec[..., None, :, :]).expand(batch)


class DiagCovariance(CovarianceFamily):
    """Each component has its own diagonal covariance; Normal-Gamma prior per feature.

    precision_kd ~ Gamma(dof / 2, scale_dd / 2): independent per feature, with the shape and rate
    the full family's Wishart(dof, scale⁻¹) would give a diagonal precision when scale is
    diagonal (for a non-diagonal scale it is a choice, not the Wishart's marginal).
    """

    name = "diag"

    def cov_shape(self, k, d):
        return (k, d)

    def n_cov_parameters(self, k, d):
        return k * d

    precision_event_dims = 1

    def to_full(self, cov, k, d):
        return torch.diag_embed(cov)

    def from_full(self, cov):
        diag = torch.diagonal(cov, dim1=-2, dim2=-1)
        if not bool(torch.allclose(cov, torch.diag_embed(diag))):
            raise ValueError("covariances for covariance='diag' must be diagonal; pass (K, D) variances.")
        return diag

    def precision_cholesky(self, cov):
        ok = (cov > 0).all(-1)
        return torch.rsqrt(torch.where(cov > 0, cov, torch.ones_like(cov))), ok

    def precision_from_cholesky(self, prec_chol):
        return prec_chol**2

    def covariance_from_precision(self, prec):
        return 1.0 / prec

    def log_det_precision(self, prec_chol, k, d):
        return 2.0 * torch.log(prec_chol).sum(-1)

    def precision_times(self, prec, means):
        return prec * means

    def n_quadratic(self, d):
        return d

    def quadratic_features(self, xt, out):
        return torch.mul(xt, xt, out=out)

    def quadratic_weights(self, prec, k):
        return -0.5 * prec

    def scatter(self, nk, sx, sq):
        return sq - sx * sx / nk[..., None]

    def outer(self, v):
        return v * v

    def add_ridge(self, cov, reg):
        return cov + reg

    def map_covariance(self, scatter, shrink_outer, nk, prior, d):
        if prior is None:
            return scatter / nk[..., None]
        scale = torch.diagonal(prior.scale)
        return (scale + scatter + shrink_outer) / (nk + prior.dof - 1)[..., None]

    def precision_prior(self, prior, k, d):
        if prior is None:
            return dist.ImproperUniform(constraints.positive, (k,), (d,))
        rate = 0.5 * torch.diagonal(prior.scale)
        return dist.Gamma(0.5 * prior.dof * torch.ones_like(rate), rate).to_event(1).expand([k])

    def mean_prior(self, prior, prec, k, d):
        if prior is None:
            return dist.ImproperUniform(constraints.real_vector, (k,), (d,))
        return dist.Normal(prior.mean_loc, torch.rsqrt(prior.mean_precision * prec)).to_event(1)

    def likelihood(self, loc, prec):
        return dist.Normal(loc, torch.rsqrt(prec)).to_event(1)


class SphericalCovariance(CovarianceFamily):
    """Each component has one variance shared by all features; Normal-Gamma prior.

    precision_k ~ Gamma(dof · D / 2, trace(scale) / 2), so that E[precision] = dof · D / trace(scale).
    """

    name = "spherical"

    def cov_shape(self, k, d):
        return (k,)

    def n_cov_parameters(self, k, d):
        return k

    precision_event_dims = 0

    def to_full(self, cov, k, d):
        return cov[..., None, None] * torch.eye(d, dtype=cov.dtype, device=cov.device)

    def from_full(self, cov):
        diag = torch.diagonal(cov, dim1=-2, dim2=-1)
        if not bool(torch.allclose(cov, diag[..., :1, None] * _eye_like(cov.shape[-1], cov))):
            raise ValueError("covariances for covariance='spherical' must be multiples of the "
                             "identity; pass (K,) variances.")
        return diag[..., 0]

    def precision_cholesky(self, cov):
        ok = cov > 0
        return torch.rsqrt(torch.where(ok, cov, torch.ones_like(cov))), ok

    def precision_from_cholesky(self, prec_chol):
        return prec_chol**2

    def covariance_from_precision(self, prec):
        return 1.0 / prec

    def log_det_precision(self, prec_chol, k, d):
        return 2.0 * d * torch.log(prec_chol)

    def precision_times(self, prec, means):
        return prec[..., None] * means

    def n_quadratic(self, d):
        return 1

    def quadratic_features(self, xt, out):
        return torch.sum(xt * xt, 0, keepdim=True, out=out)

    def quadratic_weights(self, prec, k):
        return -0.5 * prec[..., None]

    def scatter(self, nk, sx, sq):
        return sq[..., 0] - (sx * sx).sum(-1) / nk

    def outer(self, v):
        return (v * v).sum(-1)

    def add_ridge(self, cov, reg):
        return cov + reg

    def map_covariance(self, scatter, shrink_outer, nk, prior, d):
        if prior is None:
            return scatter / (d * nk)
        return (torch.trace(prior.scale) + scatter + shrink_outer) / (d * (nk + prior.dof + 1) - 2)

    def precision_prior(self, prior, k, d):
        if prior is None:
            return dist.ImproperUniform(constraints.positive, (k,), ())
        return dist.Gamma(0.5 * prior.dof * d, 0.5 * torch.trace(prior.scale)).expand([k])

    def mean_prior(self, prior, prec, k, d):
        if prior is None:
            return dist.ImproperUniform(constraints.real_vector, (k,), (d,))
        scale = torch.rsqrt(prior.mean_precision * prec)[..., None].expand(*prec.shape, d)
        return dist.Normal(prior.mean_loc, scale).to_event(1)

    def likelihood(self, loc, prec):
        return dist.Normal(loc, torch.rsqrt(prec)[..., None].expand_as(loc)).to_event(1)


FAMILIES = {f.name: f for f in (FullCovariance(), DiagCovariance(), SphericalCovariance(),
                                TiedCovariance())}


def get_family(covariance) -> CovarianceFamily:
    """Look up a family by name ('full', 'diag', 'spherical', 'tied') or pass one through."""
    if isinstance(covariance, CovarianceFamily):
        return covariance
    if covariance not in FAMILIES:
        raise ValueError(
            f"covariance must be one of {sorted(FAMILIES)}; got {covariance!r}."
        )
    return FAMILIES[covariance]
