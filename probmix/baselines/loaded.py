"""Consistency of a loaded KMeans or MeanShift (the file is untrusted).

Persistence checks that each saved value has an allowed type; these checks make the fitted
attributes agree with each other (shapes, dtype, device, finiteness), so that a crafted file
fails at load with :class:`~probmix.io.persistence.SavedFileError` rather than making a
compiled kernel read past a buffer or ``predict`` return garbage.
"""

from __future__ import annotations

import numpy as np
import torch

from probmix.io.persistence import SavedFileError

__all__ = ["check_loaded_centres"]


def _fail(cls: str, what: str):
    raise SavedFileError(f"Damaged probmix file: the saved {cls} {what}. Fit and save it again.")


def _tensor(cls, name, t, shape, dtype, device):
    if not isinstance(t, torch.Tensor):
        _fail(cls, f"has {name} of type {type(t).__name__}, not a tensor")
    if t.dtype not in (torch.float32, torch.float64) or (dtype is not None and t.dtype != dtype):
        _fail(cls, f"has {name} of dtype {t.dtype}")
    if t.device.type == "meta" or (device is not None and t.device != device):
        _fail(cls, f"has {name} on device {t.device}")
    if tuple(t.shape) != shape:
        _fail(cls, f"has {name} of shape {tuple(t.shape)}, expected {shape}")
    if not bool(torch.isfinite(t).all()):
        _fail(cls, f"has NaN or infinite values in {name}")


def check_loaded_centres(est, *, n_centres: int | None, mean: bool) -> None:
    """Raise SavedFileError unless ``est``'s fitted centres are usable (see the module).

    ``n_centres``: the number of rows ``_centers`` must have (None: any, at least one);
    ``mean``: whether a ``_mean`` tensor of shape (D,) goes with them (KMeans).
    """
    cls = type(est).__name__
    if not hasattr(est, "_centers"):
        return  # saved unfitted
    d = getattr(est, "_n_features", None)
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        _fail(cls, f"has _n_features={d!r}")
    centres = est._centers
    rows = n_centres if n_centres is not None else getattr(centres, "shape", (0,))[0]
    if rows < 1:
        _fail(cls, "has no centres")
    _tensor(cls, "_centers", centres, (rows, d), None, None)
    if mean:
        _tensor(cls, "_mean", getattr(est, "_mean", None), (d,), centres.dtype, centres.device)
    public = getattr(est, "cluster_centers_", None)
    if not isinstance(public, np.ndarray) or public.shape != (rows, d) \
            or public.dtype.kind != "f" or not np.isfinite(public).all():
        _fail(cls, f"has cluster_centers_ that do not match _centers {(rows, d)}")
    labels = getattr(est, "labels_", None)
    if labels is not None and (not isinstance(labels, np.ndarray) or labels.ndim != 1
                               or labels.dtype.kind not in "iu"
                               or (labels.size and (labels.min() < -1 or labels.max() >= rows))):
        _fail(cls, "has labels_ that are not integers below the number of centres")
