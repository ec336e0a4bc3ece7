"""Input checks of :mod:`probmix.sklearn`, worded as scikit-learn words them.

Scripts written for scikit-learn catch its errors by type and sometimes by message, and its
estimator checks test both: complex input is a ``ValueError`` ("Complex data not supported"),
sparse input names sparsity, a 1-D array says "Reshape your data", a wrong width says
"X has 3 features, but GaussianMixture is expecting 2 features as input", and a pandas
DataFrame's column names are recorded in ``feature_names_in_`` and checked at predict time.
Everything else (NaN/inf rows, empty data, fewer rows than components) is probmix's own
validation, :func:`probmix.io.data.as_data`.
"""

from __future__ import annotations

import numbers

import warnings

import numpy as np
import torch

from probmix.io.data import as_data, unmasked

__all__ = ["validate_data", "feature_names"]


def feature_names(x):
    """Column names of a DataFrame as an object array when all are strings, else None."""
    columns = getattr(x, "columns", None)
    if columns is None or isinstance(x, (np.ndarray, torch.Tensor)) or len(columns) == 0:
        return None
    names = np.asarray(list(columns), dtype=object)
    kinds = sorted({type(v).__qualname__ for v in names})
    if len(kinds) > 1 and "str" in kinds:
        raise TypeError(
            "Feature names are only supported if all input features have string names, but "
            f"your input has {kinds} as feature name / column name types. Convert them all to "
            "strings, e.g. X.columns = X.columns.astype(str), or drop the names.")
    return names if kinds == ["str"] else None


def _check_names(estimator, x, *, reset: bool) -> None:
    """Set (fit) or check (predict) ``feature_names_in_``, as scikit-learn does."""
    names = feature_names(x)
    if reset:
        if names is not None:
            estimator.feature_names_in_ = names
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return
    fitted = getattr(estimator, "feature_names_in_", None)
    cls = type(estimator).__name__
    if fitted is None and names is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {cls} was fitted without feature names",
                      UserWarning, stacklevel=4)
        return
    if names is None:
        warnings.warn(f"X does not have valid feature names, but {cls} was fitted with feature "
                      "names", UserWarning, stacklevel=4)
        return
    if len(fitted) == len(names) and bool(np.all(fitted == names)):
        return
    unseen, missing = sorted(set(names) - set(fitted)), sorted(set(fitted) - set(names))

    def listed(values):
        return "".join(f"- {v}\n" for v in values[:5]) + ("- ...\n" if len(values) > 5 else "")

    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + listed(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listed(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def _as_array(x):
    """Reject sparse and complex input; turn object arrays of numbers into floats."""
    if hasattr(x, "tocsr") or hasattr(x, "todense"):  # scipy.sparse, without importing scipy
        raise TypeError(f"X is a sparse matrix ({type(x).__name__}), and sparse input is not "
                        "supported: a Gaussian mixture needs dense coordinates. Pass "
                        "X.toarray().")
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError(f"Complex data not supported: X is a {x.dtype} tensor. Split it "
                             "into real and imaginary feature columns.")
        return x
    if getattr(x, "columns", None) is not None:
        return x  # a DataFrame: probmix names its non-numeric columns
    if x is None:
        raise TypeError("X must be an array-like of shape (n_samples, n_features) (numpy "
                        "array, tensor, DataFrame, list of rows); got None.")
    x = unmasked(x, "X")
    try:
        arr = np.asarray(x)
    except ValueError:  # ragged nested lists
        raise ValueError("X must be a rectangular array of shape (n_samples, n_features); got "
                         "rows of different lengths. Pad or trim the rows to one length."
                         ) from None
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported: X has dtype {arr.dtype}. Split it into "
                         "real and imaginary feature columns.")
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:  # scikit-learn's checks expect its words
            first = next((v for v in arr.reshape(-1) if not isinstance(v, numbers.Number)), None)
            raise TypeError(f"X must hold numbers; got an object array with non-numeric entries "
                            f"(first: {first!r}; {err}). Convert the entries to float first."
                            ) from None
    elif not arr.flags.writeable:  # e.g. a read-only memmap: torch wants memory it may write
        arr = arr.copy()
    return arr


def validate_data(estimator, x, *, reset: bool, min_samples: int = 1) -> torch.Tensor:
    """Check ``x`` and return it as a tensor on the estimator's device and dtype.

    Parameters
    ----------
    estimator : the probmix.sklearn estimator (its ``device``/``dtype`` are used)
    x : array-like (N, D), DataFrame or tensor
    reset : bool
        True in ``fit``: record ``n_features_in_`` and ``feature_names_in_``. False elsewhere:
        check against them.
    min_samples : int
        Fewest rows accepted.

    Returns
    -------
    Tensor (N, D)
    """
    _check_names(estimator, x, reset=reset)
    arr = _as_array(x)
    ndim = arr.ndim if hasattr(arr, "ndim") else np.ndim(arr)
    if ndim == 1:
        raise ValueError(
            f"Expected 2D array, got 1D array instead: X of shape {tuple(arr.shape)}. Reshape "
            "your data either using array.reshape(-1, 1) if your data has a single feature or "
            "array.reshape(1, -1) if it contains a single sample.")
    shape = tuple(arr.shape)
    for axis, what in ((0, "sample"), (1, "feature")):
        if ndim == 2 and shape[axis] == 0:
            raise ValueError(f"Found array with 0 {what}(s) (shape={shape}) while a minimum of 1 "
                             f"is required by {type(estimator).__name__}. Pass at least one "
                             f"{'row' if axis == 0 else 'column'}.")
    t = as_data(arr, name="X", device=estimator.device, dtype=estimator.dtype,
                min_samples=min_samples)
    if reset:
        estimator.n_features_in_ = int(t.shape[1])
    elif t.shape[1] != estimator.n_features_in_:
        raise ValueError(f"X has {t.shape[1]} features, but {type(estimator).__name__} is "
                         f"expecting {estimator.n_features_in_} features as input.")
    return t
