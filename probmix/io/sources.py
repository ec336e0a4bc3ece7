"""Data sources read chunk by chunk: for streaming (out-of-core) fits.

A *source* is anything whose rows do not need to be in memory at once:

- a numpy array or ``np.memmap`` (for example ``np.load(path, mmap_mode="r")``),
- a path to a ``.npy`` file (read chunk by chunk with plain reads, never unpickled),
- an HDF5 dataset (an ``h5py.Dataset``, or anything with ``.shape`` and slicing),
- a callable returning a fresh iterator of (n_i, D) arrays at each call (re-iterable),
- a list or tuple of (n_i, D) arrays,
- a one-shot iterator of (n_i, D) arrays (only single-pass online EM can use it).

:func:`as_source` wraps each in a :class:`DataSource`, whose :meth:`DataSource.chunks`
yields validated floating tensors of at most ``chunk_size`` rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from probmix.io.data import as_data

__all__ = ["DataSource", "as_source", "is_source"]


class DataSource:
    """Rows served in chunks, each a validated tensor (n, D) on ``device``/``dtype``.

    Parameters
    ----------
    open_chunks : callable
        ``open_chunks()`` returns a new iterator of array-likes (n_i, D), one pass over the data.
    n_rows : int or None
        Number of rows when known up front.
    n_features : int or None
        D when known up front.
    reiterable : bool
        Whether ``open_chunks`` can be called more than once.
    chunk_size : int
        Rows per chunk handed to the engines (larger pieces are split).
    read_rows : callable, optional
        ``read_rows(start, stop)`` returns those rows (arrays, memmaps, .npy files, HDF5
        datasets, tensors): then :meth:`shuffled_chunks` can serve chunks in a random order.
    """

    def __init__(self, open_chunks, *, n_rows, n_features, reiterable: bool, chunk_size: int,
                 device=None, dtype=None, description: str = "source", read_rows=None):
        self._open = open_chunks
        self._read = read_rows  # (start, stop) -> rows, for sources with random access
        self.n_rows = n_rows
        self.n_features = n_features
        self.reiterable = reiterable
        self.chunk_size = chunk_size
        self.device, self.dtype = device, dtype
        self.description = description
        self._passes = 0

    def chunks(self) -> Iterator[torch.Tensor]:
        """One pass over the data: tensors (n, D), n <= chunk_size, in a fixed order."""
        if self._passes and not self.reiterable:
            raise ValueError(
                f"the {self.description} is a one-shot iterator and was already consumed; exact "
                "EM needs several passes. Pass a list of arrays, a memory-mapped array, an HDF5 "
                "dataset or a callable returning a fresh iterator, or use online=True (one pass)."
            )
        self._passes += 1
        seen = 0
        for piece in self._open():
            piece = as_data(piece, name=f"chunk at row {seen} of the {self.description}",
                            device=self.device, dtype=self.dtype)
            if self.n_features is None:
                self.n_features = piece.shape[1]
            if piece.shape[1] != self.n_features:
                raise ValueError(
                    f"every chunk of the {self.description} must have {self.n_features} columns; "
                    f"the chunk at row {seen} has {piece.shape[1]}. Make the chunks consistent."
                )
            for start in range(0, piece.shape[0], self.chunk_size):
                part = piece[start:start + self.chunk_size]
                seen += part.shape[0]
                yield part
        if self.n_rows is None:
            self.n_rows = seen
        elif seen != self.n_rows:
            raise ValueError(f"the {self.description} gave {seen} rows in this pass but "
                             f"{self.n_rows} before; a source must serve the same rows each pass.")


    def shuffled_chunks(self, generator: torch.Generator) -> Iterator[torch.Tensor] | None:
        """One pass over the data with the chunks in a random order (``generator``), or None
        when the source has no random access (lists, callables, iterators)."""
        if self._read is None or self.n_rows is None:
            return None

        def serve():
            n, size = self.n_rows, self.chunk_size
            for b in torch.randperm(-(-n // size), generator=generator).tolist():
                start = b * size
                yield as_data(self._read(start, min(n, start + size)),
                              name=f"chunk at row {start} of the {self.description}",
                              device=self.device, dtype=self.dtype)
        return serve()


def _sliced(array, chunk_size: int):
    """Open function of an array-like with ``shape`` and slicing (memmap, HDF5 dataset)."""
    n = array.shape[0]

    def open_chunks():
        for start in range(0, n, chunk_size):
            yield np.array(array[start:start + chunk_size])  # a writable copy of the rows read
    return open_chunks


def _npy_source(path: Path, **opts) -> DataSource:
    """A .npy file read chunk by chunk with plain reads (not mmap: the pages read are then not
    counted in this process's resident memory, and nothing is unpickled)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, fortran, dtype = read(f)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError) as err:
        raise ValueError(f"{str(path)!r} is not a readable .npy file ({err}).") from err
    if dtype.hasobject or dtype.kind not in "biuf" or len(shape) != 2 or fortran:
        raise ValueError(
            f"{str(path)!r} must hold a C-ordered 2-D array of numbers for streaming; it holds "
            f"shape {shape}, dtype {dtype}{', Fortran order' if fortran else ''}. Save it with "
            "np.save(path, np.ascontiguousarray(x.reshape(n_rows, n_features))).")
    n, d = shape
    expected = offset + n * d * dtype.itemsize
    if path.stat().st_size < expected:
        raise ValueError(f"{str(path)!r} is truncated: its header promises {n}×{d} values "
                         f"({expected} bytes) but the file has {path.stat().st_size} bytes.")
    rows = opts["chunk_size"]

    def read_rows(start, stop):
        with open(path, "rb") as f:
            f.seek(offset + start * d * dtype.itemsize)
            return np.fromfile(f, dtype=dtype, count=(stop - start) * d).reshape(-1, d)

    def open_chunks():
        with open(path, "rb") as f:
            f.seek(offset)
            for start in range(0, n, rows):
                count = min(rows, n - start) * d
                yield np.fromfile(f, dtype=dtype, count=count).reshape(-1, d)
    return DataSource(open_chunks, n_rows=n, n_features=d, reiterable=True,
                      description=f"file {path.name}", read_rows=read_rows, **opts)


def is_source(x) -> bool:
    """Whether ``x`` must be read chunk by chunk rather than converted at once."""
    if isinstance(x, (str, os.PathLike, np.memmap)):
        return True
    if hasattr(x, "shape") and hasattr(x, "chunks") and hasattr(x, "dtype") \
            and not isinstance(x, (np.ndarray, torch.Tensor)):
        return True  # an h5py.Dataset (or zarr array)
    if callable(x) and not isinstance(x, (np.ndarray, torch.Tensor)):
        return True
    if isinstance(x, Iterator):
        return True
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(
        getattr(item, "ndim", 0) == 2 for item in x)


def as_source(x, *, chunk_size: int = 65536, device=None, dtype=None) -> DataSource:
    """Wrap ``x`` in a :class:`DataSource` serving chunks of at most ``chunk_size`` rows.

    Parameters
    ----------
    x : ndarray, memmap, str or Path (.npy), HDF5 dataset, callable, list of arrays or iterator
        See the module docstring.
    chunk_size : int
        Rows per chunk; memory per chunk is about ``chunk_size × (1 + D + D(D+1)/2) × 8`` bytes
        for a full-covariance E-step.
    device, dtype
        Where the chunks are moved and their precision (default CPU float64).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer (rows per chunk); got "
                         f"{chunk_size!r}.")
    chunk_size = int(chunk_size)
    opts = dict(chunk_size=chunk_size, device=device, dtype=dtype)
    if isinstance(x, DataSource):
        return x
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        if path.suffix != ".npy":
            raise ValueError(f"a path source must be a .npy file (read chunk by chunk); got "
                             f"{str(path)!r}. For HDF5 pass the h5py dataset, e.g. "
                             "h5py.File(path)['name']; for CSV load it with probmix.io.loaders.")
        if not path.is_file():
            raise ValueError(f"no such file: {str(path)!r}.")
        return _npy_source(path, **opts)
    if isinstance(x, (np.ndarray, torch.Tensor)) or (hasattr(x, "shape") and hasattr(x, "dtype")
                                                      and hasattr(x, "__getitem__")):
        shape = tuple(x.shape)
        if len(shape) != 2:
            raise ValueError(f"a source array must have shape (N, D); got shape {shape}. "
                             "Reshape it, e.g. x.reshape(-1, 1) for one feature.")
        if isinstance(x, torch.Tensor):
            return DataSource(lambda: (x[i:i + chunk_size] for i in range(0, shape[0], chunk_size)),
                              n_rows=shape[0], n_features=shape[1], reiterable=True,
                              description="tensor", read_rows=lambda a, b: x[a:b], **opts)
        return DataSource(_sliced(x, chunk_size), n_rows=shape[0], n_features=shape[1],
                          reiterable=True, description=type(x).__name__,
                          read_rows=lambda a, b: np.array(x[a:b]), **opts)
    if isinstance(x, (list, tuple)):
        items = list(x)
        return DataSource(lambda: iter(items), n_rows=None, n_features=None, reiterable=True,
                          description="list of arrays", **opts)
    if isinstance(x, Iterator):
        return DataSource(lambda: x, n_rows=None, n_features=None, reiterable=False,
                          description="iterator", **opts)
    if callable(x):
        def open_chunks():
            it = x()
            if not isinstance(it, Iterator):
                try:
                    it = iter(it)
                except TypeError:
                    raise TypeError(
                        f"a callable source must return an iterator of (n_i, D) arrays each time "
                        f"it is called; {getattr(x, '__name__', 'it')}() returned a "
                        f"{type(it).__name__}. Make it a generator function (yield each chunk) "
                        "or return iter([chunk, ...]).") from None
            return it
        return DataSource(open_chunks, n_rows=None, n_features=None, reiterable=True,
                          description="callable source", **opts)
    raise TypeError(f"a streaming source must be an array, a memmap, a .npy path, an HDF5 "
                    f"dataset, a list of arrays, a callable or an iterator; got "
                    f"{type(x).__name__}.")
