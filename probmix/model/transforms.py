"""A bijection between R^{D(D+1)/2} and positive definite matrices, for the precision sites.

torch registers no ``biject_to`` for ``constraints.positive_definite``, and autoguides
(SVI) and NUTS need one to move a Wishart site to an unconstrained space of the right
dimension. probmix's precision priors declare the support :data:`precision_matrix`, a
positive-definite constraint of its own type, and register the bijection for that type
only, so nothing changes for other code:

    v ∈ R^{D(D+1)/2}  →  L lower triangular, diag(L) = exp(v_diag)  →  Λ = L Lᵀ
"""

from __future__ import annotations

import torch
from pyro.distributions.transforms import CholeskyTransform
from torch.distributions import biject_to, constraints, transform_to
from torch.distributions.transforms import ComposeTransform, Transform

__all__ = ["precision_matrix", "VecToLowerCholesky", "positive_definite_bijection"]


class _PrecisionMatrix(constraints._PositiveDefinite):
    """Positive definite matrices, with a registered bijection to R^{D(D+1)/2}."""


precision_matrix = _PrecisionMatrix()


def _size_from_vech(m: int) -> int:
    m = int(m)
    d = int(round(((8 * m + 1) ** 0.5 - 1) / 2))
    if d * (d + 1) // 2 != m:
        raise ValueError(f"a vector of length {m} is not the lower triangle of a square matrix.")
    return d


class VecToLowerCholesky(Transform):
    """R^{D(D+1)/2} → lower-triangular matrices with a positive (exponentiated) diagonal."""

    domain = constraints.real_vector
    codomain = constraints.lower_cholesky
    bijective = True

    def __eq__(self, other):
        return isinstance(other, VecToLowerCholesky)

    def _call(self, x):
        d = _size_from_vech(x.shape[-1])
        rows, cols = torch.tril_indices(d, d, device=x.device)
        out = x.new_zeros(*x.shape[:-1], d, d)
        out[..., rows, cols] = torch.where(rows == cols, x.exp(), x)
        return out

    def _inverse(self, y):
        d = y.shape[-1]
        rows, cols = torch.tril_indices(d, d, device=y.device)
        v = y[..., rows, cols]
        return torch.where(rows == cols, v.log(), v)

    def log_abs_det_jacobian(self, x, y):
        d = y.shape[-1]
        rows, cols = torch.tril_indices(d, d, device=x.device)
        return (x * (rows == cols)).sum(-1)

    def forward_shape(self, shape):
        d = _size_from_vech(shape[-1])
        return shape[:-1] + (d, d)

    def inverse_shape(self, shape):
        d = shape[-1]
        return shape[:-2] + (d * (d + 1) // 2,)


def positive_definite_bijection(constraint=None) -> Transform:
    """v → L → L Lᵀ, from R^{D(D+1)/2} onto positive definite matrices."""
    return ComposeTransform([VecToLowerCholesky(), CholeskyTransform().inv])


biject_to.register(_PrecisionMatrix, positive_definite_bijection)
transform_to.register(_PrecisionMatrix, positive_definite_bijection)
