"""Gaussian-mixture parameters given by a user: validated into tensors of the family's shapes."""

from __future__ import annotations

import numpy as np
import torch

from probmix.model.covariance import CovarianceFamily

__all__ = ["MixtureParams", "as_params"]


class MixtureParams:
    """Parameters of a Gaussian mixture as tensors, covariances in the family's native shape.

    Attributes
    ----------
    weights : Tensor (..., K)
    means : Tensor (..., K, D)
    covariances : Tensor, native shape (see :mod:`probmix.model.covariance`)
    """

    __slots__ = ("weights", "means", "covariances")

    def __init__(self, weights, means, covariances):
        self.weights, self.means, self.covariances = weights, means, covariances


def _as_tensor(value, name, *, dtype, device):
    try:
        t = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(
            np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"params[{name!r}] must be a numeric array; got {type(value).__name__}.") from None
    t = t.to(dtype=dtype, device=device)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"params[{name!r}] contains NaN or infinite values.")
    return t


def as_params(params, family: CovarianceFamily, *, n_components: int, n_features: int | None,
              dtype=torch.float64, device="cpu") -> MixtureParams:
    """Validate user-given mixture parameters.

    Parameters
    ----------
    params : dict or MixtureParams
        ``weights`` (K,), ``means`` (K, D), ``covariances`` as full matrices (K, D, D) or in
        the family's native shape; or ``precisions`` instead of ``covariances``. A leading
        batch dimension (R, ...) gives R sets of parameters (e.g. R EM restarts).
    family : CovarianceFamily
    n_components : int
    n_features : int or None
        Expected D; None takes it from ``means``.

    Raises
    ------
    ValueError
        Wrong shapes, weights not on the simplex, or a covariance that is not symmetric
        positive definite (naming the component and its eigenvalues).
    """
    if isinstance(params, MixtureParams):
        return params
    if not isinstance(params, dict):
        raise TypeError(
            "params must be a dict with 'weights', 'means' and 'covariances' (or 'precisions'); "
            f"got {type(params).__name__}."
        )
    missing = [k for k in ("weights", "means") if k not in params]
    if missing or not ({"covariances", "precisions"} & params.keys()):
        raise ValueError(
            "params must have 'weights', 'means' and 'covariances' (or 'precisions'); got keys "
            f"{sorted(params)}."
        )
    opts = dict(dtype=dtype, device=device)
    weights = _as_tensor(params["weights"], "weights", **opts)
    means = _as_tensor(params["means"], "means", **opts)
    K = n_components
    D = means.shape[-1] if n_features is None else n_features
    if means.ndim < 2 or means.shape[-2:] != (K, D):
        raise ValueError(
            f"params['means'] must have shape ({K}, {D}) for {K} components in {D} dimensions; "
            f"got {tuple(means.shape)}."
        )
    batch = means.shape[:-2]
    if weights.shape != (*batch, K):
        raise ValueError(f"params['weights'] must have shape {(*batch, K)}; got {tuple(weights.shape)}.")
    if bool((weights < 0).any()) or not bool(
            torch.allclose(weights.sum(-1), torch.ones((), **opts), atol=1e-6)):
        raise ValueError("params['weights'] must be non-negative and sum to 1 (per parameter set).")
    key = "covariances" if "covariances" in params else "precisions"
    mats = _as_tensor(params[key], key, **opts)
    native = (*batch, *family.cov_shape(K, D))
    if mats.shape == (*batch, K, D, D) and mats.shape != native:
        _check_symmetric_pd(mats, key)
        mats = family.from_full(mats)
    elif mats.shape != native:
        raise ValueError(
            f"params[{key!r}] must have shape {native} (covariance={family.name!r}) or "
            f"{(*batch, K, D, D)}; got {tuple(mats.shape)}."
        )
    if family.precision_event_dims == 2:  # matrices: full and tied
        _check_symmetric_pd(mats, key)
    elif bool((mats <= 0).any()):
        raise ValueError(f"params[{key!r}] must be positive (they are variances); got {mats.min():g}.")
    cov = mats if key == "covariances" else family.covariance_from_precision(mats)
    return MixtureParams(weights, means, cov)


def _check_symmetric_pd(mats: torch.Tensor, key: str) -> None:
    if not bool(torch.allclose(mats, mats.transpose(-1, -2))):
        raise ValueError(f"params[{key!r}] must be symmetric matrices.")
    eig = torch.linalg.eigvalsh(mats)
    bad = (eig <= 0).any(-1)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        vals = ", ".join(f"{v:.3g}" for v in eig[idx].tolist())
        raise ValueError(
            f"params[{key!r}][{', '.join(map(str, idx))}] is not positive definite (eigenvalues "
            f"{vals}); a covariance must be symmetric with positive eigenvalues, so every "
            "off-diagonal term needs |c_ij| < sqrt(c_ii * c_jj). Fix that matrix."
        )
