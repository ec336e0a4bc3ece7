"""Full covariance: each component has its own D×D covariance; Normal-Wishart prior."""

from __future__ import annotations

import pyro.distributions as dist
from torch.distributions import constraints

from probmix.model.covariance.conjugate import WishartPrecision
from probmix.model.covariance.matrix import MatrixFamily, Wishart, unvech
from probmix.model.transforms import precision_matrix

__all__ = ["FullCovariance"]


class FullCovariance(MatrixFamily):
    """Each component has its own full covariance; Normal-Wishart prior."""

    name = "full"
    conjugate = WishartPrecision(tied=False)

    def cov_shape(self, k, d):
        return (k, d, d)

    def n_cov_parameters(self, k, d):
        return k * d * (d + 1) // 2

    def to_full(self, cov, k, d):
        return cov

    def from_full(self, cov):
        return cov

    def precision_times(self, prec, means):
        return (prec @ means[..., None])[..., 0]

    def quadratic_weights(self, prec, k):
        return self._vech_weights(prec)

    def scatter(self, nk, sx, sq):
        return unvech(sq, sx.shape[-1]) - sx[..., :, None] * (sx / nk[..., None])[..., None, :]

    def precision_prior(self, prior, k, d):
        if prior is None:
            return dist.ImproperUniform(precision_matrix, (k,), (d, d))
        return Wishart(df=prior.dof, precision_matrix=prior.scale).expand([k])

    def mean_prior(self, prior, prec, k, d):
        if prior is None:
            return dist.ImproperUniform(constraints.real_vector, (k,), (d,))
        return dist.MultivariateNormal(prior.mean_loc, precision_matrix=prior.mean_precision * prec)
