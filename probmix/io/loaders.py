"""Reading data files and model files for the command line (and for scripts).

:func:`load_data` reads a numeric table from a ``.csv`` (header row), ``.npy``,
``.npz`` or HDF5 (``.h5``/``.hdf5``, through the optional ``h5py``) file.
Loading never executes code from the file: NumPy files are read with
``allow_pickle=False``, and the declared size of every array is checked
against the bytes on disk before anything is allocated, so a corrupted or
truncated file raises a ``ValueError`` that names the file, never a crash or
a huge allocation.

:func:`load_program` imports a user's model file (``--model PATH.py``) and
returns its ``program``; unlike data files, this *runs* the file, as
importing any Python module does.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import math
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["load_data", "load_program", "DATA_SUFFIXES"]

DATA_SUFFIXES = (".csv", ".npy", ".npz", ".h5", ".hdf5")


def _fail(path, problem: str, fix: str) -> ValueError:
    return ValueError(f"cannot read {str(path)!r}: {problem}. {fix}")


# ----------------------------------------------------------------------------- CSV


def _read_csv(path: Path):
    import pandas as pd

    try:
        frame = pd.read_csv(path, skipinitialspace=True, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise _fail(path, "the file is empty", "A CSV needs a header row and one row per point")
    except Exception as err:  # parser errors, undecodable bytes, csv.Error, ...
        raise _fail(path, f"not a readable CSV ({type(err).__name__}: {_one_line(err)})",
                    "Check that it is a comma-separated text file with a header row") from None
    names = [str(c).strip() for c in frame.columns]
    if all(_is_number(n) for n in names):
        raise _fail(path, f"its first row ({', '.join(names)[:40]}) is numbers, not a header",
                    "Add a header row naming the columns, e.g. x,y")
    unnamed = [n for n in names if n.startswith("Unnamed:") or not n]
    if unnamed:
        raise _fail(path, f"the header has {len(unnamed)} empty column name(s)",
                    "Name every column in the header row")
    if len(set(names)) != len(names):
        raise _fail(path, "the header repeats a column name", "Give every column its own name")
    if len(frame) == 0:
        raise _fail(path, "it has a header but no data rows", "Add one row per point")
    frame.columns = names
    return frame, names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numeric_frame(path: Path, frame, names: list[str]) -> np.ndarray:
    import pandas as pd

    bad = []
    columns = []
    for name in names:
        col = frame[name]
        if col.dtype.kind in "biuf":
            columns.append(col.to_numpy(dtype=np.float64))
            continue
        values = pd.to_numeric(col, errors="coerce")  # text -> NaN, to name the column below
        text = values.isna() & col.notna() & (col.astype(str).str.strip() != "")
        if bool(text.any()):
            first = int(np.flatnonzero(text.to_numpy())[0])
            bad.append(f"{name!r} (line {first + 2}: {str(col.iloc[first])[:20]!r})")
        else:
            columns.append(values.to_numpy(dtype=np.float64))
    if bad:
        raise _fail(path, f"non-numeric column(s) {', '.join(bad)}",
                    "Pick the numeric columns with --columns a,b (columns=[...])")
    return np.stack(columns, axis=1)


# ----------------------------------------------------------------------------- NumPy


def _check_declared(path, shape, dtype, available: int) -> None:
    """Refuse object arrays and arrays that declare more bytes than the file holds."""
    if dtype.hasobject:
        raise _fail(path, "it holds Python objects, which loading would have to unpickle",
                    "Save a numeric array (e.g. x.astype(float)) instead")
    need = math.prod(shape) * dtype.itemsize
    if need > available:
        raise _fail(path, f"it declares an array of shape {tuple(shape)} ({need} bytes) but "
                    f"holds {available} bytes of data (truncated or corrupted)",
                    "Save the array again")


def _read_npy_stream(path, fp, available: int) -> np.ndarray:
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fp)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(fp)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    _check_declared(path, shape, dtype, available - fp.tell())
    data = fp.read(math.prod(shape) * dtype.itemsize)
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")


def _read_npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as fp:
            return _read_npy_stream(path, fp, path.stat().st_size)
    except ValueError as err:
        if str(err).startswith("cannot read"):
            raise
        raise _fail(path, f"not a valid .npy file ({_one_line(err)})",
                    "Write it with numpy.save") from None
    except Exception as err:  # EOFError, struct errors, ...
        raise _fail(path, f"not a valid .npy file ({type(err).__name__}: {_one_line(err)})",
                    "Write it with numpy.save") from None


def _read_npz(path: Path, dataset: str | None):
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()
                       if info.filename.endswith(".npy")}
            if not members:
                raise _fail(path, "the archive holds no .npy arrays",
                            "Write it with numpy.savez")
            name = _pick(path, dataset, sorted(members), "array")
            info = members[name]
            with archive.open(info) as fp:
                array = _read_npy_stream(path, fp, info.file_size)
            return array, name
    except ValueError as err:
        if str(err).startswith("cannot read"):
            raise
        raise _fail(path, f"not a valid .npz file ({_one_line(err)})",
                    "Write it with numpy.savez") from None
    except Exception as err:  # BadZipFile, zlib.error, EOFError, CRC errors, ...
        raise _fail(path, f"not a valid .npz file ({type(err).__name__}: {_one_line(err)})",
                    "Write it with numpy.savez") from None


def _pick(path, wanted: str | None, names: list[str], what: str) -> str:
    if wanted is not None:
        if wanted not in names:
            raise _fail(path, f"no {what} named {wanted!r}; it holds {', '.join(names) or 'none'}",
                        "Pass one of those with --dataset (dataset=...)")
        return wanted
    if len(names) != 1:
        raise _fail(path, f"it holds {len(names)} {what}s ({', '.join(names)})",
                    "Say which one with --dataset NAME (dataset=...)")
    return names[0]


# ----------------------------------------------------------------------------- HDF5


def _read_h5(path: Path, dataset: str | None):
    try:
        import h5py
    except ImportError:
        raise ValueError(f"cannot read {str(path)!r}: reading HDF5 needs h5py, which is not "
                         "installed. Install it with: pip install probmix[h5]") from None
    try:
        with h5py.File(path, "r") as f:
            names = []
            f.visititems(lambda name, obj: names.append(name)
                         if isinstance(obj, h5py.Dataset) else None)
            name = _pick(path, dataset, names, "dataset")
            ds = f[name]
            dtype = ds.dtype
            if dtype.names is None and dtype.kind not in "biuf":
                raise _fail(path, f"dataset {name!r} has dtype {dtype}, not numbers",
                            "Pick a numeric dataset with --dataset")
            if ds.compression is None:  # else the bytes on disk do not bound the size
                _check_declared(path, ds.shape, dtype, path.stat().st_size)
            return ds[()], name
    except ValueError as err:
        if str(err).startswith("cannot read"):
            raise
        raise _fail(path, f"not a readable HDF5 file ({_one_line(err)})",
                    "Check the file, or write it again with h5py") from None
    except Exception as err:  # OSError from the HDF5 library, KeyError, ...
        raise _fail(path, f"not a readable HDF5 file ({type(err).__name__}: {_one_line(err)})",
                    "Check the file, or write it again with h5py") from None


# ----------------------------------------------------------------------------- public


def _one_line(err) -> str:
    return " ".join(str(err).split())[:200]


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
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    columns = [str(c) for c in columns]
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


def load_data(path, *, columns=None, dataset: str | None = None):
    """Read a numeric data table from a file.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (a header row, then one row per point; the delimiter is sniffed), ``.npy``
        (a 1-D array is one feature, a 2-D array is (N, D), a structured array has one column
        per field), ``.npz`` (one array, or the one named by ``dataset``), ``.h5``/``.hdf5``
        (needs ``h5py``: ``pip install probmix[h5]``; one dataset, or the one named by
        ``dataset``).
    columns : str or sequence of str, optional
        Columns to keep, in this order: names from the CSV header or structured fields, or
        indices ``"0"``, ``"1"``, ... of a plain array. A string is split at commas.
    dataset : str, optional
        Which array of an ``.npz`` or dataset of an HDF5 file (a path such as ``"grp/x"``).

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
        frame, names = _read_csv(path)
        _, names = _select_columns(path, np.zeros((0, len(names))), names, columns)
        x = _numeric_frame(path, frame, names)
        header_lines = 1
    elif suffix == ".npy":
        x, names = _as_table(path, _read_npy(path), "the array")
        x, names = _select_columns(path, x, names, columns)
    elif suffix == ".npz":
        array, name = _read_npz(path, dataset)
        x, names = _as_table(path, array, f"array {name!r}")
        x, names = _select_columns(path, x, names, columns)
    elif suffix in (".h5", ".hdf5"):
        array, name = _read_h5(path, dataset)
        x, names = _as_table(path, np.asarray(array), f"dataset {name!r}")
        x, names = _select_columns(path, x, names, columns)
    else:
        raise _fail(path, f"unknown file type {suffix or '(no extension)'!r}",
                    f"Use one of {', '.join(DATA_SUFFIXES)}")
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
