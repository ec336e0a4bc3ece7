"""Reading data files and model files for the command line (and for scripts).

:func:`load_data` reads a numeric table from a ``.csv`` (header row), ``.npy``,
``.npz`` or HDF5 (``.h5``/``.hdf5``, through the optional ``h5py``) file.
Loading never executes code from the file: NumPy files are read with
``allow_pickle=False``, the declared size of every array is checked against the
bytes on disk before anything is allocated, and a compressed array may expand at
most ``max_expansion``-fold (:mod:`probmix.io.array_files`), so a corrupted,
truncated or bomb-like file raises a ``ValueError`` that names the file, never a
crash or a huge allocation. CSV files are parsed in memory proportional to the
file, with the delimiter and decimal mark sniffed and a leading row-id column
left out (:mod:`probmix.io.csv_files`).

:func:`load_program` imports a user's model file (``--model PATH.py``) and
returns its ``program``; unlike data files, this *runs* the file, as
importing any Python module does.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import warnings
from pathlib import Path

import numpy as np

from probmix.io import array_files, csv_files
from probmix.io.read_errors import fail as _fail
from probmix.io.read_errors import one_line as _one_line

__all__ = ["load_data", "load_program", "DATA_SUFFIXES"]

DATA_SUFFIXES = (".csv", ".npy", ".npz", ".h5", ".hdf5")


# ----------------------------------------------------------------------------- public


def _as_table(path, array: np.ndarray, what: str):
    """A NumPy array (1-D, 2-D, or structured) -> float array (N, D) and column names."""
    if array.dtype.names is not None:  # structured / compound rows: one column per field
        names = list(array.dtype.names)
        bad = [n for n in names if array.dtype[n].kind not in "biuf" or array.dtype[n].shape]
        if bad:
            raise _fail(path, f"non-numeric field(s) {', '.join(map(repr, bad))} in {what}",
                        "Pick the numeric fields with --columns a,b (columns=[...])")
        return np.stack([np.asarray(array[n], dtype=np.float64).reshape(-1) for n in names],
                        axis=1), names
    if array.dtype.kind not in "biuf":
        raise _fail(path, f"{what} has dtype {array.dtype}, not numbers",
                    "Save a numeric array (e.g. x.astype(float))")
    if array.ndim == 1:
        array = array[:, None]  # one feature
    if array.ndim != 2:
        raise _fail(path, f"{what} has shape {array.shape}, not (n_points, n_features)",
                    "Save a 2-D array (reshape it to (len(x), -1))")
    return np.asarray(array, dtype=np.float64), [str(i) for i in range(array.shape[1])]


def _select_columns(path, x: np.ndarray, names: list[str], columns) -> tuple[np.ndarray, list]:
    if columns is None:
        return x, names
    columns = _split(columns)
    if not columns:
        raise _fail(path, "no columns were named", "Pass column names like --columns a,b")
    missing = [c for c in columns if c not in names]
    if missing:
        raise _fail(path, f"no column(s) {', '.join(map(repr, missing))}; the columns are "
                    f"{', '.join(names)}", "Pick columns from that list with --columns")
    index = [names.index(c) for c in columns]
    return x[:, index], columns


def _check_finite(path, x: np.ndarray, header_lines: int) -> None:
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        where = (f"line {bad[0] + 1 + header_lines} of the file" if header_lines
                 else f"row {bad[0]}")
        raise _fail(path, f"{len(bad)} of {len(x)} rows hold NaN, an empty cell or an infinite "
                    f"value (first at {where})",
                    "Drop or impute those rows, or leave their columns out with --columns")


def _split(names) -> list[str]:
    if isinstance(names, str):
        names = [c.strip() for c in names.split(",") if c.strip()]
    return [str(c) for c in names]


def _exclude(path, names: list[str], exclude) -> list[str]:
    if exclude is None:
        return names
    exclude = _split(exclude)
    missing = [c for c in exclude if c not in names]
    if missing:
        raise _fail(path, f"no column(s) {', '.join(map(repr, missing))} to exclude; the "
                    f"columns are {', '.join(names)}", "Name columns from that list in --exclude")
    kept = [n for n in names if n not in exclude]
    if not kept:
        raise _fail(path, "--exclude leaves no column", "Exclude fewer columns")
    return kept


def load_data(path, *, columns=None, dataset: str | None = None, exclude=None,
              delimiter: str | None = None, decimal: str | None = None,
              max_expansion: float = array_files.MAX_EXPANSION):
    """Read a numeric data table from a file.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (a header row, then one row per point; the delimiter and decimal mark are
        sniffed), ``.npy`` (a 1-D array is one feature, a 2-D array is (N, D), a structured
        array has one column per field), ``.npz`` (one array, or the one named by
        ``dataset``), ``.h5``/``.hdf5`` (needs ``h5py``: ``pip install probmix[h5]``; one
        dataset, or the one named by ``dataset``).
    columns : str or sequence of str, optional
        Columns to keep, in this order: names from the CSV header or structured fields, or
        indices ``"0"``, ``"1"``, ... of a plain array. A string is split at commas.
        Without it, a CSV's leading row-id column (unnamed row names, consecutive integers
        from 0 or 1, or an ``id``-like name with distinct values) is left out, with a warning.
    dataset : str, optional
        Which array of an ``.npz`` or dataset of an HDF5 file (a path such as ``"grp/x"``).
    exclude : str or sequence of str, optional
        Columns to leave out (names or indices, as ``columns``).
    delimiter, decimal : str, optional
        A CSV's field delimiter and decimal mark (default: sniffed; ``delimiter=";",
        decimal=","`` for a European spreadsheet's export).
    max_expansion : float
        How many times its compressed size a compressed ``.npz`` array or HDF5 dataset may
        expand (above 64 MiB); see :mod:`probmix.io.array_files`.

    Returns
    -------
    x : ndarray (N, D) float64
        Finite values only.
    column_names : list of str (D,)

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unknown extension, unreadable, truncated or corrupted file, pickled (object) arrays,
        an over-expanding compressed array, a CSV that no delimiter splits consistently,
        non-numeric columns, unknown column or dataset names, rows with NaN/empty/infinite
        values (with their count and first line). The message names the file and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such data file: {str(path)!r}. Check the path (it is "
                                f"relative to {str(Path.cwd())!r}).")
    if path.is_dir():
        raise _fail(path, "it is a folder", "Pass a data file (.csv, .npy, .npz or .h5)")
    suffix = path.suffix.lower()
    header_lines = 0
    if suffix == ".csv":
        frame, names = csv_files.read_csv(path, delimiter=delimiter, decimal=decimal)
        if columns is None:
            names = _exclude(path, names, exclude)
            found = csv_files.id_column(frame, names) if names[0] == frame.columns[0] else None
            if found is not None:
                warnings.warn(f"{str(path)!r}: column {found[0]!r} looks like a row id "
                              f"({found[1]}); it is left out of the features. Choose the "
                              "columns yourself with --columns (columns=[...]).", UserWarning,
                              stacklevel=2)
                names = names[1:]
        else:
            names = _exclude(path, _select_columns(path, np.zeros((0, len(names))), names,
                                                   columns)[1], exclude)
        x = csv_files.numeric_frame(path, frame, names)
        header_lines = 1
    else:
        if suffix == ".npy":
            array, what = array_files.read_npy(path), "the array"
        elif suffix == ".npz":
            array, name = array_files.read_npz(path, dataset, max_expansion=max_expansion)
            what = f"array {name!r}"
        elif suffix in (".h5", ".hdf5"):
            array, name = array_files.read_h5(path, dataset, max_expansion=max_expansion)
            what = f"dataset {name!r}"
        else:
            raise _fail(path, f"unknown file type {suffix or '(no extension)'!r}",
                        f"Use one of {', '.join(DATA_SUFFIXES)}")
        x, names = _as_table(path, np.asarray(array), what)
        x, names = _select_columns(path, x, names, columns)
        keep = _exclude(path, names, exclude)
        x, names = x[:, [names.index(n) for n in keep]], keep
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise _fail(path, f"it holds no data (shape {x.shape})", "Pass a file with points in it")
    _check_finite(path, x, header_lines)
    return np.ascontiguousarray(x), names


def load_program(path, *, n_components: int | None = None):
    """Import a model file and return its mixture program.

    The file must define a module-level function ``program(x, *, n_components=...)`` (the
    convention of the ``models/`` gallery). Importing the file runs it, as importing any
    Python module does: load only model files you trust.

    Parameters
    ----------
    path : str or Path
        A ``.py`` file.
    n_components : int, optional
        Passed to ``program`` as the keyword ``n_components`` (``functools.partial``);
        default: the program's own default.

    Returns
    -------
    callable
        ``program(x)``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Not a ``.py`` file, the file fails to import (the error is named), it has no
        callable ``program``, or ``n_components`` is given but ``program`` takes no such
        keyword.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {str(path)!r}. Check the path (it is "
                                f"relative to {str(Path.cwd())!r}).")
    if path.suffix != ".py":
        raise ValueError(f"model file {str(path)!r} must be a Python file (.py) defining "
                         "program(x, *, n_components=...).")
    name = f"probmix_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise ValueError(f"model file {str(path)!r} failed to import: {type(err).__name__}: "
                         f"{_one_line(err)}. Fix the file (run `python {path}` to see where)."
                         ) from err
    program = getattr(module, "program", None)
    if not callable(program):
        found = sorted(n for n, v in vars(module).items()
                       if inspect.isfunction(v) and not n.startswith("_"))
        raise ValueError(f"model file {str(path)!r} defines no function named 'program' "
                         f"(functions found: {', '.join(found) or 'none'}). Name the model "
                         "function program(x, *, n_components=...).")
    if n_components is None:
        return program
    try:
        parameters = inspect.signature(program).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes = "n_components" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not takes:
        raise ValueError(f"program() in {str(path)!r} takes no n_components keyword, so the "
                         "number of components cannot be set. Leave out -k (n_components) or "
                         "add the keyword: def program(x, *, n_components=3).")
    return functools.partial(program, n_components=n_components)
