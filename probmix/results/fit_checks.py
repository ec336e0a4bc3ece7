"""What a loaded :class:`~probmix.Fit` must satisfy before it may predict (the file is untrusted).

The format checks of :mod:`probmix.io.persistence` give values of the right types; these
checks make them agree with each other and with the declared model (shapes, finiteness,
a valid weight vector, covariances that factorise), so that a crafted or altered file fails
at load with :class:`~probmix.io.persistence.SavedFileError`, never later inside torch.
"""

from __future__ import annotations

import numpy as np
import torch

from probmix.io.persistence import SavedFileError

__all__ = ["check_loaded_fit"]


def _fail(what: str):
    raise SavedFileError(f"Damaged probmix file: {what}. Save the fit again.")


def _numeric(name: str, a: np.ndarray, *, finite: bool = True) -> None:
    if a.dtype.kind not in "biuf":
        _fail(f"{name} holds {a.dtype} values, not numbers")
    if finite and a.dtype.kind == "f" and not np.isfinite(a).all():
        _fail(f"{name} holds NaN or infinite values")


def _shape(name: str, a, shape: tuple) -> None:
    if tuple(a.shape) != tuple(shape):
        _fail(f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}")


def check_loaded_fit(fit) -> None:
    """Raise :class:`SavedFileError` unless the fields of ``fit`` agree (see the module)."""
    d = fit.n_features
    for group in ("params", "draws"):
        for name, a in getattr(fit, group).items():
            _numeric(f"{group}[{name!r}]", a)
    for name, a in fit.sample_stats.items():
        _numeric(f"sample_stats[{name!r}]", a, finite=False)
    lead = {a.shape[:2] for a in fit.draws.values()}
    if any(a.ndim < 2 for a in fit.draws.values()) or len(lead) > 1:
        _fail(f"draws of inconsistent (chain, draw) shapes {sorted(lead)}")
    if fit.center is not None:
        _numeric("center", fit.center)
        _shape("center", fit.center, (d,))
    if fit.data is not None:
        _numeric("data", fit.data)
        if fit.data.ndim != 2 or fit.data.shape[1] != d:
            _fail(f"data has shape {fit.data.shape}, expected (N, {d})")
    mixture = fit.mixture
    if not mixture.gaussian:
        return
    _check_gaussian(fit, mixture, d)


def _check_gaussian(fit, mixture, d: int) -> None:
    family, k = mixture.family, mixture.n_components
    expected = {"weights": (k,), "means": (k, d), "covariances": tuple(family.cov_shape(k, d))}
    for name, shape in expected.items():
        if name not in fit.params:
            _fail(f"params has no {name!r}")
        _shape(f"params[{name!r}]", fit.params[name], shape)
        if name in fit.draws:
            _shape(f"draws[{name!r}]", fit.draws[name], fit.draws[name].shape[:2] + shape)
    w = fit.params["weights"]
    tol = 1e-4 if w.dtype == np.float32 else 1e-8
    if (w < 0).any() or abs(float(w.sum()) - 1.0) > tol:
        _fail(f"params['weights'] is not a probability vector (sum {float(w.sum())!r})")
    _, ok = family.precision_cholesky(torch.from_numpy(np.asarray(fit.params["covariances"],
                                                                  dtype=np.float64)))
    if not bool(ok.all()):
        _fail("params['covariances'] holds a matrix that is not positive definite")
    z = fit.assignment_draws
    if z is not None:
        if z.dtype.kind not in "iu" or z.ndim != 3 or (z.size and (z.min() < 0 or z.max() >= k)):
            _fail(f"assignment_draws is not an integer (chain, draw, N) array of labels < {k}")
