"""Tied covariance: all components share one full covariance; Wishart prior on its precision."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from probmix.model.covariance.conjugate import WishartPrecision
from probmix.model.covariance.matrix import MatrixFamily, Wishart, unvech
from probmix.model.transforms import precision_matrix

__all__ = ["TiedCovariance"]


class TiedCovariance(MatrixFamily):
    """All components share one full covariance; Wishart prior on the shared precision."""

    name = "tied"
    conjugate = WishartPrecision(tied=True)

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
        logdet = super().log_det_precision(prec_chol, k, d)  # (...,)
        return logdet[..., None].expand(*logdet.shape, k)

    def precision_times(self, prec, means):
        return means @ prec  # Λ symmetric: (Λ μ_k)ᵀ = μ_kᵀ Λ

    def quadratic_weights(self, prec, k):
        w = self._vech_weights(prec)
        return w.unsqueeze(-2).expand(*w.shape[:-1], k, w.shape[-1])

    def scatter(self, nk, sx, sq):
        d = sx.shape[-1]
        total = unvech(sq.sum(-2), d)
        return total - (sx[..., :, None] * (sx / nk[..., None])[..., None, :]).sum(-3)

    def outer(self, v):
        return (v[..., :, None] * v[..., None, :]).sum(-3)

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
