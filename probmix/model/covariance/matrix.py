"""Shared parts of the families whose covariances are full D×D matrices (full and tied)."""

from __future__ import annotations

import functools

import pyro.distributions as dist
import torch

from probmix.model.covariance.base import CovarianceFamily
from probmix.model.transforms import precision_matrix

__all__ = ["MatrixFamily", "Wishart", "cholesky_precision", "unvech"]


class Wishart(dist.Wishart):
    """Pyro's Wishart with a support that has a registered bijection (see probmix.model.transforms),
    so autoguides and NUTS can work on precision matrices in an unconstrained space."""

    support = precision_matrix


def eye_like(d: int, ref: torch.Tensor) -> torch.Tensor:
    """The D×D identity in the dtype and on the device of ``ref``."""
    return torch.eye(d, dtype=ref.dtype, device=ref.device)


def cholesky_precision(cov: torch.Tensor):
    """Upper precision Cholesky U (precision = U Uᵀ) of covariances (..., D, D).

    Returns ``(U, ok)`` where ``ok`` (...,) marks the matrices that factorised;
    failed ones get the identity so batched computations go on.
    """
    chol, info = torch.linalg.cholesky_ex(cov)
    ok = info == 0
    if not bool(ok.all()):
        chol = torch.where(ok[..., None, None], chol, eye_like(cov.shape[-1], cov))
    eye = eye_like(cov.shape[-1], cov).expand_as(chol)
    inv_lower = torch.linalg.solve_triangular(chol, eye, upper=False)
    return inv_lower.transpose(-1, -2), ok


@functools.lru_cache(maxsize=64)
def _vech_layout(d: int, dtype: torch.dtype, device: str):
    """Upper-triangle indices of a D×D matrix and the factors -1/2 (diagonal), -1 (off)."""
    rows, cols = torch.triu_indices(d, d, device=device)
    factor = torch.where(rows == cols, -0.5, -1.0).to(dtype)
    return rows, cols, factor


def unvech(vech: torch.Tensor, d: int) -> torch.Tensor:
    """(..., d(d+1)/2) upper-triangle entries -> symmetric (..., d, d)."""
    rows, cols, _ = _vech_layout(d, vech.dtype, str(vech.device))
    out = vech.new_zeros(*vech.shape[:-1], d, d)
    out[..., rows, cols] = vech
    out[..., cols, rows] = vech
    return out


class MatrixFamily(CovarianceFamily):
    """Shared parts of the families whose covariances are full D×D matrices."""

    def precision_cholesky(self, cov):
        return cholesky_precision(cov)

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

    def log_det_precision(self, prec_chol, k, d):
        return 2.0 * torch.log(torch.diagonal(prec_chol, dim1=-2, dim2=-1)).sum(-1)

    def outer(self, v):
        return v[..., :, None] * v[..., None, :]

    def add_ridge(self, cov, reg):
        if isinstance(reg, torch.Tensor):
            return cov + torch.diag_embed(reg.to(cov)).expand_as(cov)
        return cov + reg * eye_like(cov.shape[-1], cov)

    def likelihood(self, loc, prec):
        return dist.MultivariateNormal(loc, precision_matrix=prec)
