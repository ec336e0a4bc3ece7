"""Reading ``.npy``, ``.npz`` and HDF5 data files without executing or over-allocating.

NumPy files are read with no pickle; every array's declared size is checked against the
bytes that hold it before anything is allocated. A compressed ``.npz`` member or HDF5
dataset may expand to at most ``max_expansion`` times its compressed size (default
:data:`MAX_EXPANSION`, 100) or :data:`MIN_LIMIT_BYTES` (64 MiB), whichever is larger, so a
decompression bomb (a 1 MB archive of a 1 GB array of zeros) is refused before it is
inflated. Real data compresses far less than 100-fold; pass ``max_expansion=`` (CLI:
``--max-expansion``) to read a file that legitimately does.
"""

from __future__ import annotations

import math
import zipfile

import numpy as np

from probmix.io.read_errors import fail, one_line

__all__ = ["read_npy", "read_npz", "read_h5", "MAX_EXPANSION", "MIN_LIMIT_BYTES"]

MAX_EXPANSION = 100.0
MIN_LIMIT_BYTES = 64 * 2**20


def _check_declared(path, shape, dtype, available: int) -> None:
    """Refuse object arrays and arrays that declare more bytes than the file holds."""
    if dtype.hasobject:
        raise fail(path, "it holds Python objects, which loading would have to unpickle",
                   "Save a numeric array (e.g. x.astype(float)) instead")
    need = math.prod(shape) * dtype.itemsize
    if need > available:
        raise fail(path, f"it declares an array of shape {tuple(shape)} ({need} bytes) but "
                   f"holds {available} bytes of data (truncated or corrupted)",
                   "Save the array again")


def _check_expansion(path, what: str, expanded: int, compressed: int,
                     max_expansion: float) -> None:
    limit = max(MIN_LIMIT_BYTES, max_expansion * compressed)
    if expanded > limit:
        raise fail(path, f"{what} is {compressed:,} bytes compressed but expands to "
                   f"{expanded:,} bytes ({expanded / max(compressed, 1):,.0f}-fold, over the "
                   f"limit of max_expansion={max_expansion:g}x or {MIN_LIMIT_BYTES >> 20} MiB): "
                   "a decompression bomb, or very repetitive data",
                   "If you trust the file, pass a larger max_expansion= (--max-expansion)")


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
    # a writable copy (np.frombuffer over bytes is read-only: torch warns on every use)
    array = np.frombuffer(bytearray(data), dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")


def _reraise(path, err, kind: str, fix: str):
    if isinstance(err, ValueError) and str(err).startswith("cannot read"):
        raise err
    detail = one_line(err) if isinstance(err, ValueError) else \
        f"{type(err).__name__}: {one_line(err)}"
    raise fail(path, f"not a valid {kind} file ({detail})", fix) from None


def read_npy(path) -> np.ndarray:
    """The array of a ``.npy`` file (no pickle; declared size checked)."""
    try:
        with open(path, "rb") as fp:
            return _read_npy_stream(path, fp, path.stat().st_size)
    except Exception as err:  # ValueError, EOFError, struct errors, ...
        _reraise(path, err, ".npy", "Write it with numpy.save")


def read_npz(path, dataset: str | None, *, max_expansion: float = MAX_EXPANSION):
    """(array, name): one array of a ``.npz`` file, its expansion bounded (see the module)."""
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()
                       if info.filename.endswith(".npy")}
            if not members:
                raise fail(path, "the archive holds no .npy arrays", "Write it with numpy.savez")
            name = pick(path, dataset, sorted(members), "array")
            info = members[name]
            if info.compress_type == zipfile.ZIP_STORED:
                if info.file_size > size:
                    raise ValueError(f"member {name!r} declares {info.file_size} bytes in a "
                                     f"file of {size}")
            else:
                _check_expansion(path, f"array {name!r}", info.file_size, info.compress_size,
                                 max_expansion)
            with archive.open(info) as fp:
                array = _read_npy_stream(path, fp, info.file_size)
            return array, name
    except Exception as err:  # BadZipFile, zlib.error, EOFError, CRC errors, ...
        _reraise(path, err, ".npz", "Write it with numpy.savez")


def pick(path, wanted: str | None, names: list[str], what: str) -> str:
    """The array or dataset to read: ``wanted``, or the only one."""
    if wanted is not None:
        if wanted not in names:
            raise fail(path, f"no {what} named {wanted!r}; it holds {', '.join(names) or 'none'}",
                       "Pass one of those with --dataset (dataset=...)")
        return wanted
    if len(names) != 1:
        raise fail(path, f"it holds {len(names)} {what}s ({', '.join(names)})",
                   "Say which one with --dataset NAME (dataset=...)")
    return names[0]


def read_h5(path, dataset: str | None, *, max_expansion: float = MAX_EXPANSION):
    """(array, name): one dataset of an HDF5 file, its size checked before it is read."""
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
            name = pick(path, dataset, names, "dataset")
            ds = f[name]
            dtype = ds.dtype
            if dtype.names is None and dtype.kind not in "biuf":
                raise fail(path, f"dataset {name!r} has dtype {dtype}, not numbers",
                           "Pick a numeric dataset with --dataset")
            if dtype.hasobject:
                _check_declared(path, ds.shape, dtype, 0)
            nbytes = math.prod(ds.shape) * dtype.itemsize
            filtered = ds.chunks is not None and bool(ds.id.get_create_plist().get_nfilters())
            if filtered:  # compressed: the bytes on disk do not bound the size
                _check_expansion(path, f"dataset {name!r}", nbytes, ds.id.get_storage_size(),
                                 max_expansion)
            else:
                _check_declared(path, ds.shape, dtype, path.stat().st_size)
            return ds[()], name
    except Exception as err:  # OSError from the HDF5 library, KeyError, ...
        _reraise(path, err, "HDF5", "Check the file, or write it again with h5py")
