"""Data validation: every public entry point turns its input into a tensor here.

One function, :func:`as_data`, accepts any array-like (numpy array, torch
tensor, pandas DataFrame, list of lists) and returns a floating tensor of
shape (N, D) on the requested device and dtype, or raises a ``ValueError`` /
``TypeError`` that names the argument, what was expected, what was received
and the fix.
"""

from __future__ import annotations

import math
import os
import numbers

import numpy as np
import torch

__all__ = ["as_data", "check_n_features", "check_squares_finite", "unmasked", "resolve_device",
           "resolve_dtype", "as_sample_weight"]


def resolve_device(device=None, *, like: torch.Tensor | None = None) -> torch.device:
    """Return the torch device to compute on.

    ``None`` means the device of ``like`` when it is a tensor, else the CPU.
    """
    if device is None:
        return like.device if isinstance(like, torch.Tensor) else torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or a torch.device; got {device!r}."
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was requested but torch sees no CUDA GPU; "
            "pass device='cpu' or install a CUDA build of torch."
        )
    return device


def resolve_dtype(dtype=None, *, device: torch.device) -> torch.dtype:
    """Return the floating dtype: float64 on the CPU, float32 on a GPU unless given."""
    if dtype is None:
        return torch.float64 if device.type == "cpu" else torch.float32
    if isinstance(dtype, str):
        dtype = {"float32": torch.float32, "float64": torch.float64,
                 "double": torch.float64, "float": torch.float32}.get(dtype, dtype)
    if dtype is np.float32:
        dtype = torch.float32
    if dtype is np.float64:
        dtype = torch.float64
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}.")
    return dtype


def _from_dataframe(x, name: str) -> np.ndarray:
    """Convert a pandas DataFrame, naming any non-numeric columns."""
    bad = [str(col) for col, dt in zip(x.columns, x.dtypes)
           if getattr(dt, "kind", "O") not in ("b", "i", "u", "f")]
    if bad:
        raise TypeError(
            f"{name} must hold numeric columns only; non-numeric column(s): {', '.join(bad)}. "
            f"Drop them or select the numeric ones, e.g. {name}[[...numeric columns...]]."
        )
    return x.to_numpy(dtype=np.float64, na_value=np.nan)


def _to_numpy(x, name: str) -> np.ndarray:
    """Turn a non-tensor array-like into a numeric numpy array, or raise."""
    if x is None:
        raise TypeError(f"{name} must be an array-like of shape (n_samples, n_features) "
                        "(numpy array, torch tensor, DataFrame, list of rows); got None.")
    if isinstance(x, os.PathLike) or (isinstance(x, str) and (
            x.lower().endswith((".npy", ".npz", ".csv", ".h5", ".hdf5")) or os.path.isfile(x))):
        raise TypeError(
            f"{name} is a path ({os.fsdecode(x)!r}), which this method cannot read chunk by "
            "chunk: only closed-form EM (engine='map', methods 'em' and 'online'), KMeans and "
            "MiniBatchKMeans stream from a .npy file. Load it first: np.load(path) or "
            "probmix.io.loaders.load_data(path).")
    if hasattr(x, "columns") and hasattr(x, "dtypes") and hasattr(x, "to_numpy"):
        return _from_dataframe(x, name)
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):  # pandas Series and friends
        x = x.to_numpy()
    x = unmasked(x, name)
    try:
        arr = np.asarray(x)
    except ValueError as err:  # ragged nested lists
        raise ValueError(
            f"{name} must be a rectangular array of shape (n_samples, n_features); "
            f"got rows of different lengths ({err}). Pad or trim the rows to one length."
        ) from None
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must hold numbers; got an object array with non-numeric entries "
                f"(first: {_first_non_numeric(arr)!r}). Convert the entries to float first."
            ) from None
    if arr.dtype.kind in ("U", "S"):
        raise TypeError(
            f"{name} must hold numbers; got strings (dtype {arr.dtype}). "
            "Parse them into floats first, e.g. np.asarray(x, dtype=float)."
        )
    if arr.dtype.kind == "c":
        raise TypeError(
            f"{name} must be real-valued; got complex numbers (dtype {arr.dtype}). "
            "Split them into real and imaginary feature columns."
        )
    if arr.dtype.kind not in ("b", "i", "u", "f"):
        raise TypeError(f"{name} must hold numbers; got dtype {arr.dtype}.")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:  # long double: torch has none
        with np.errstate(over="ignore"):
            wide = arr.astype(np.float64)
        if not np.isfinite(wide[np.isfinite(arr)]).all():
            raise ValueError(f"{name} holds {arr.dtype} values beyond float64's range "
                             f"(largest {np.abs(arr[np.isfinite(arr)]).max():.3g}); rescale "
                             f"{name} before fitting.")
        arr = wide
    return arr


def unmasked(x, name: str):
    """``x`` without its mask when nothing is masked; a ValueError naming the masked rows."""
    if not isinstance(x, np.ma.MaskedArray):
        return x
    mask = np.ma.getmaskarray(x)
    if mask.any():
        rows = np.flatnonzero(mask.reshape(len(mask), -1).any(-1)) if mask.ndim else [0]
        raise ValueError(
            f"{name} is a masked array with {int(mask.sum())} masked value(s) in {len(rows)} "
            f"row(s) (first: row {rows[0]}); probmix does not skip masked entries. Drop those "
            f"rows ({name}[~{name}.mask.any(axis=1)].data) or fill them ({name}.filled(...)).")
    return np.ma.getdata(x)


def _first_non_numeric(arr: np.ndarray):
    for item in arr.reshape(-1):
        if not isinstance(item, numbers.Number):
            return item
    return None


def as_data(
    x,
    *,
    name: str = "x",
    device=None,
    dtype=None,
    min_samples: int = 1,
) -> torch.Tensor:
    """Validate an array-like of points and return it as a tensor.

    Parameters
    ----------
    x : array-like, shape (N, D)
        numpy array, torch tensor, pandas DataFrame or list of lists.
    name : str
        Name of the argument, used in error messages.
    device : str or torch.device, optional
        Target device; default is the device of ``x`` if it is a tensor, else CPU.
    dtype : torch.float32 or torch.float64, optional
        Target dtype; default float64 on the CPU and float32 on a GPU.
    min_samples : int
        Fewest rows accepted (e.g. the number of components of a mixture).

    Returns
    -------
    torch.Tensor, shape (N, D)
        Contiguous floating tensor on ``device``.

    Raises
    ------
    TypeError
        Non-numeric, complex, string or object input (non-numeric DataFrame columns are named).
    ValueError
        Wrong number of dimensions, no rows or columns, fewer than ``min_samples`` rows,
        NaN or infinite values (with the number of affected rows and the first index).
    """
    device = resolve_device(device, like=x)
    dtype = resolve_dtype(dtype, device=device)
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(
                f"{name} must be real-valued; got a complex tensor ({x.dtype}). "
                "Split it into real and imaginary feature columns."
            )
        if x.is_meta:
            raise ValueError(
                f"{name} is a tensor on the 'meta' device, which has a shape but no values; "
                "pass the data itself (e.g. materialise it on 'cpu' first)."
            )
        t = x.detach()
    else:
        arr = _to_numpy(x, name)
        arr = np.ascontiguousarray(arr).reshape(arr.shape)  # keeps 0-d as 0-d
        if not arr.flags.writeable:  # torch warns on read-only memory (np.load mmap, frombuffer)
            arr = arr.copy()
        t = torch.from_numpy(arr)
    if t.ndim != 2:
        if t.ndim == 0:
            raise ValueError(
                f"{name} must be 2-D of shape (n_samples, n_features); got a single number "
                f"({t.item()!r}). Pass [[value]] for one sample of one feature."
            )
        if t.ndim == 1:
            raise ValueError(
                f"{name} must be 2-D of shape (n_samples, n_features); got a 1-D array of "
                f"shape ({t.shape[0]},). Use x.reshape(-1, 1) for one feature or "
                "x.reshape(1, -1) for one sample."
            )
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features); got {t.ndim}-D with shape "
            f"{tuple(t.shape)}. Reshape it, e.g. x.reshape(len(x), -1)."
        )
    n, d = t.shape
    if n == 0:
        raise ValueError(f"{name} is empty: got shape {tuple(t.shape)}; pass at least one row.")
    if d == 0:
        raise ValueError(
            f"{name} has no features: got shape {tuple(t.shape)}; pass at least one column."
        )
    if n < min_samples:
        raise ValueError(
            f"{name} has {n} sample(s) but at least {min_samples} are needed (one per "
            "component); pass more data or fewer components."
        )
    t = t.to(device=device, dtype=dtype).contiguous()
    # A NaN or an infinity makes the sum NaN or infinite, so a finite sum clears every value
    # in one vectorised read; the row-wise check runs only when it is not (or overflowed).
    if math.isfinite(float(t.sum())):
        return t
    finite = torch.isfinite(t).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        raise ValueError(
            f"{name} contains NaN or infinite values in {bad.numel()} of {n} rows (first at "
            f"row {int(bad[0])}). Drop or impute them first, e.g. x[np.isfinite(x).all(axis=1)]."
        )
    return t


def check_squares_finite(x: torch.Tensor, *, name: str = "x", large: bool = True) -> None:
    """Raise a ``ValueError`` if squares of (differences of) values of ``x`` overflow or
    underflow its dtype.

    Covariances and distances need them: above sqrt(max) / 4 (about 3e153 in float64, 5e18
    in float32) the data covariance is infinite; when every column of ``x`` varies by less
    than 1000 sqrt(tiny) (about 1.5e-151 in float64, 1e-16 in float32) the squares of its
    spread are lost below the smallest normal number and every component collapses onto one.
    ``large=False`` checks the small side only (k-means works in a centred frame and copes
    with large magnitudes).
    """
    if x.numel() == 0:
        return
    finfo = torch.finfo(x.dtype)
    limit = math.sqrt(finfo.max) / 4
    biggest = float(x.abs().max())
    if large and biggest > limit:
        raise ValueError(
            f"{name} has a value of magnitude {biggest:.3g}, whose square overflows {x.dtype} "
            f"(a Gaussian covariance needs squares; the limit is {limit:.3g}). Rescale {name}, "
            f"e.g. {name} / {biggest:.0e}: the fitted means scale back by that factor and the "
            "covariances by its square."
        )
    floor = 1000 * math.sqrt(finfo.tiny)
    spread = float((x.amax(0) - x.amin(0)).max())
    if 0 < spread < floor:
        factor = 10.0 ** round(-math.log10(spread))
        raise ValueError(
            f"{name} varies by at most {spread:.3g} in every column, whose square underflows "
            f"{x.dtype} (the smallest spread it can fit is {floor:.3g}): the components would "
            f"collapse onto one. Rescale {name}, e.g. {name} * {factor:.0e}: the fitted means "
            "scale back by that factor and the covariances by its square."
        )


def check_n_features(x: torch.Tensor, n_features: int, *, name: str = "x") -> None:
    """Raise a ``ValueError`` if ``x`` has not the ``n_features`` columns the fit saw."""
    if x.shape[1] != n_features:
        raise ValueError(
            f"{name} has {x.shape[1]} feature(s) but the model was fitted on {n_features}; "
            "pass data with the same columns, in the same order, as at fit time."
        )


_WEIGHT_RANGE = (1e-100, 1e100)  # the total weight: beyond it the weighted sums break down


def as_sample_weight(sample_weight, n: int, *, device, dtype) -> torch.Tensor | None:
    """Validate per-row weights: shape (N,), finite, non-negative, not all zero.

    Returns ``None`` when ``sample_weight`` is ``None`` (every row counts once).
    """
    if sample_weight is None:
        return None
    w = sample_weight.detach() if isinstance(sample_weight, torch.Tensor) else torch.from_numpy(
        np.ascontiguousarray(_to_numpy(sample_weight, "sample_weight"))
    )
    w = w.to(device=device, dtype=dtype).reshape(-1) if w.ndim <= 1 else w
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(
            f"sample_weight must have shape ({n},), one weight per row of x; got shape "
            f"{tuple(w.shape)}."
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(
            "sample_weight must be finite and non-negative; got "
            f"{int((~torch.isfinite(w) | (w < 0)).sum())} bad value(s). Weights act as counts."
        )
    total = float(w.sum())
    if total <= 0:
        raise ValueError("sample_weight sums to zero: at least one row needs a positive weight.")
    if not _WEIGHT_RANGE[0] <= total <= _WEIGHT_RANGE[1]:
        raise ValueError(
            f"sample_weight sums to {total:.3g}, outside [{_WEIGHT_RANGE[0]:g}, "
            f"{_WEIGHT_RANGE[1]:g}]: weights act as counts, and at this scale the weighted sums "
            f"{'overflow' if total > 1 else 'lose all precision'}. Pass weights of a sensible "
            "scale, e.g. sample_weight / sample_weight.max() * (number of rows).")
    return w
