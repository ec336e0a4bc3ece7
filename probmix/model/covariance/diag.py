"""Diagonal covariance: one variance per component and feature; Normal-Gamma prior."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from probmix.model.covariance.base import CovarianceFamily
from probmix.model.covariance.conjugate import GammaPrecision

__all__ = ["DiagCovariance"]


class DiagCovariance(CovarianceFamily):
    """Each component has its own diagonal covariance; Normal-Gamma prior per feature.

    precision_kd ~ Gamma(dof / 2, scale_dd / 2): independent per feature, with the shape and rate
    the full family's Wishart(dof, scale⁻¹) would give a diagonal precision when scale is
    diagonal (for a non-diagonal scale it is a choice, not the Wishart's marginal).
    """

    name = "diag"
    conjugate = GammaPrecision(per_feature=True)
    precision_event_dims = 1

    def cov_shape(self, k, d):
        return (k, d)

    def n_cov_parameters(self, k, d):
        return k * d

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

    def default_prior_dof(self, d):
        """3: each variance's Gamma(3/2, Ψ₀_dd/2) precision prior is the marginal that the
        full family's Wishart(D + 2) gives a diagonal entry of Σ, and MAP divides by n_k + 2."""
        return 3.0

    def min_prior_dof(self, d):
        return 0.0

    def add_ridge(self, cov, reg):
        return cov + reg

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
