"""Spherical covariance: one variance per component, shared by all features; Normal-Gamma prior."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from probmix.model.covariance.base import CovarianceFamily
from probmix.model.covariance.conjugate import GammaPrecision
from probmix.model.covariance.diag import DiagCovariance

__all__ = ["SphericalCovariance"]


class SphericalCovariance(CovarianceFamily):
    """Each component has one variance shared by all features; Normal-Gamma prior.

    precision_k ~ Gamma(dof · D / 2, trace(scale) / 2), so that E[precision] = dof · D / trace(scale).
    """

    name = "spherical"
    conjugate = GammaPrecision(per_feature=False)
    precision_event_dims = 0

    def cov_shape(self, k, d):
        return (k,)

    def n_cov_parameters(self, k, d):
        return k

    def to_full(self, cov, k, d):
        return cov[..., None, None] * torch.eye(d, dtype=cov.dtype, device=cov.device)

    def from_full(self, cov):
        diag = torch.diagonal(cov, dim1=-2, dim2=-1)
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        if not bool(torch.allclose(cov, diag[..., :1, None] * eye)):
            raise ValueError("covariances for covariance='spherical' must be multiples of the "
                             "identity; pass (K,) variances.")
        return diag[..., 0]

    def column_scaled(self):
        """Columns scaled differently make a spherical covariance diagonal."""
        from probmix.model.covariance.registry import FAMILIES  # the registered instance

        return FAMILIES.get("diag") or DiagCovariance()

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

    def default_prior_dof(self, d):
        """1 + 2/D: the precision prior Gamma((D + 2)/2, tr Ψ₀/2), so that MAP divides the
        pooled scatter by D (n_k + 2), as the other families divide by n_k + 2."""
        return 1.0 + 2.0 / d

    def min_prior_dof(self, d):
        return 0.0

    def add_ridge(self, cov, reg):
        return cov + (reg.mean() if isinstance(reg, torch.Tensor) else reg)

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
