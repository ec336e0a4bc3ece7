"""The probmix file format: plain arrays plus a JSON header, never code.

A probmix file is a standard ``.npz`` (a ZIP archive of ``.npy`` members, stored
uncompressed) readable with ``np.load(path, allow_pickle=False)``:

* ``__header__.npy``: the UTF-8 bytes (uint8) of one JSON object with ``format``
  ("probmix"), ``format_version``, ``kind`` ("Fit", "KMeans" or "MeanShift"),
  ``versions`` (probmix, torch, pyro, numpy and python that wrote the file),
  the ``model`` declaration (fits only) and the ``state`` (the fields or attributes);
* ``a0.npy``, ``a1.npy``, ...: every array, referenced from the header as ``{"$array": "a0"}``.

Values in ``state`` are JSON with a few tagged forms, each a one-key object:
``$dict``, ``$items`` (a dict whose keys are not all strings), ``$tuple``,
``$float`` (nan, inf, -inf), ``$array``, ``$npscalar`` (a NumPy scalar, kept as a
0-d array), ``$tensor`` (with its device), ``$torch_dtype``, ``$numpy_type``,
``$numpy_dtype``, ``$device`` and ``$unsaved`` (see :class:`UnsavedValue`). Inside a model
declaration, a registered value class appears as ``${name}`` over its fields (``$prior``).

This module reads and writes that format; which classes a file may hold is the business of
:mod:`probmix.io.persistence.registry`. Loading reads the format and nothing else: no pickle, no ``torch.load``, no import
and no evaluation of anything in the file; a damaged or foreign file raises
:class:`SavedFileError`. Writing goes to a temporary file in the target folder
which then replaces the target in one rename (:mod:`probmix.io.atomic`), so a crash never
leaves half a file.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import struct
import warnings
import zipfile
import zlib

import numpy as np
import torch

from probmix.io.atomic import replaced
from probmix.io.data import resolve_device

__all__ = ["FORMAT", "FORMAT_VERSION", "SavedFileError", "UnsavedValue", "Encoder", "Decoder",
           "corrupt", "expect", "write", "read", "device_mapper"]

FORMAT = "probmix"
FORMAT_VERSION = 1
_HEADER = "__header__"
_MAX_HEADER_BYTES = 1 << 26  # 64 MiB of JSON is far beyond any real header
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same fit gives the same bytes
_ARRAY_KINDS = "biufcUS"  # numbers and fixed-width text; never objects or records
# Everything a damaged archive can raise while being parsed (not programming errors).
_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError,
           IndexError, TypeError, struct.error, NotImplementedError, OverflowError,
           RecursionError, zlib.error)


class SavedFileError(ValueError):
    """A file is not a readable probmix file: damaged, foreign, or of a newer format."""


@dataclasses.dataclass(frozen=True)
class UnsavedValue:
    """Stands in, after loading, for an option value that the format cannot hold.

    Saving records such a value (a function, a guide object, ...) by its type and ``repr``
    and warns; loading gives back this placeholder rather than the object.
    """

    type_name: str
    text: str


# ----------------------------------------------------------------------------- encoding


class Encoder:
    """Turns values into JSON with tagged forms, collecting arrays under keys a0, a1, ...

    ``declare(value)`` gives ``(name, fields)`` for a value class that a model declaration
    may hold (written ``{"$name": fields}``), or None; it is consulted only under
    ``declarations=True``.
    """

    def __init__(self, declare=lambda value: None):
        self.arrays: dict[str, np.ndarray] = {}
        self.declare = declare

    def _store(self, array: np.ndarray) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = array
        return key

    def encode(self, value, where: str, *, strict: bool, declarations: bool = False):
        """JSON for ``value``; ``strict`` raises on what cannot be stored, else warns."""
        if value is None or isinstance(value, (bool, str)):
            return value
        declared = self.declare(value) if declarations else None
        if declared is not None:
            name, fields = declared
            return {f"${name}": self.encode(fields, where, strict=True)}
        if isinstance(value, np.generic):
            return self._array(np.asarray(value), where, strict, tag="$npscalar")
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else {"$float": repr(float(value))}
        if isinstance(value, np.ndarray):
            return self._array(value, where, strict, tag="$array")
        if isinstance(value, torch.Tensor):
            node = self._array(value.detach().cpu().numpy(), where, strict, tag="$tensor")
            if "$tensor" in node:
                node["device"] = str(value.device)
            return node
        if isinstance(value, torch.dtype):
            return {"$torch_dtype": str(value).replace("torch.", "")}
        if isinstance(value, torch.device):
            return {"$device": str(value)}
        if isinstance(value, np.dtype) and not value.hasobject and value.kind in _ARRAY_KINDS:
            return {"$numpy_dtype": value.str}
        if isinstance(value, type) and issubclass(value, np.generic) and \
                np.dtype(value).kind in "biufc":
            return {"$numpy_type": np.dtype(value).name}
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, f"{where}[{i}]", strict=strict) for i, v in enumerate(value)]
            return {"$tuple": items} if isinstance(value, tuple) else items
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {"$dict": {k: self.encode(v, f"{where}[{k!r}]", strict=strict)
                                  for k, v in value.items()}}
            return {"$items": [[self.encode(k, f"{where} key", strict=strict),
                                self.encode(v, f"{where}[{k!r}]", strict=strict)]
                               for k, v in value.items()]}
        return self._unsaved(value, where, strict)

    def _array(self, array: np.ndarray, where, strict, *, tag):
        if array.dtype.hasobject or array.dtype.kind not in _ARRAY_KINDS:
            return self._unsaved(array, where, strict)
        return {tag: self._store(array)}

    def _unsaved(self, value, where, strict):
        type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        if strict:
            raise TypeError(
                f"{where} holds a {type_name}, which a probmix file cannot store (it stores "
                "numbers, strings, numeric arrays and tensors, and lists and dicts of them). "
                "Convert it to an array or drop it before saving."
            )
        warnings.warn(
            f"{where} holds a {type_name}, which a probmix file cannot store: it is saved as its "
            "repr and loads back as a probmix.io.persistence.UnsavedValue.",
            UserWarning, stacklevel=5,
        )
        return {"$unsaved": {"type": type_name, "repr": repr(value)[:2000]}}


def corrupt(message: str):
    """Raise the :class:`SavedFileError` of a damaged file, saying what is wrong."""
    raise SavedFileError(f"Damaged probmix file: {message}.")


def expect(cond: bool, message: str) -> None:
    """:func:`corrupt` unless ``cond``."""
    if not cond:
        corrupt(message)


class Decoder:
    """Inverse of :class:`Encoder`, checking every node (never executes anything).

    ``build(name, fields)`` rebuilds a declared value class from its decoded fields (raising
    TypeError or ValueError when they do not fit), or returns None for an unknown name.
    """

    def __init__(self, arrays: dict[str, np.ndarray], device, build=lambda name, fields: None):
        self.arrays = arrays
        self.device = device  # callable: saved device string -> torch.device to load onto
        self.build = build
        self.used: set[str] = set()

    def _take(self, key) -> np.ndarray:
        expect(isinstance(key, str) and key in self.arrays, f"missing array {key!r}")
        self.used.add(key)
        return self.arrays[key]

    def decode_checked(self, node, where: str):
        """``decode``, any failure on a malformed node reported as a damaged file."""
        try:
            return self.decode(node)
        except SavedFileError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, RecursionError) as err:
            corrupt(f"{where} ({type(err).__name__}: {err})")

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        expect(isinstance(node, dict) and len(node) >= 1, f"unexpected value {node!r:.80}")
        tag = next(iter(node))
        body = node[tag]
        if tag == "$dict":
            expect(isinstance(body, dict) and len(node) == 1, "bad $dict")
            return {k: self.decode(v) for k, v in body.items()}
        if tag == "$items":
            expect(isinstance(body, list) and all(isinstance(p, list) and len(p) == 2
                                                   for p in body), "bad $items")
            out = {}
            for k, v in body:
                key = self.decode(k)
                expect(isinstance(key, (str, int, float, bool, tuple, type(None))),
                        f"unhashable dict key {key!r:.80}")
                out[key] = self.decode(v)
            return out
        if tag == "$tuple":
            expect(isinstance(body, list), "bad $tuple")
            return tuple(self.decode(v) for v in body)
        if tag == "$float":
            expect(body in ("nan", "inf", "-inf"), f"bad $float {body!r:.80}")
            return float(body)
        if tag == "$array":
            return self._take(body)
        if tag == "$npscalar":
            arr = self._take(body)
            expect(arr.ndim == 0, "a NumPy scalar that is not 0-d")
            return arr[()]
        if tag == "$tensor":
            expect(isinstance(node.get("device"), str), "a tensor without its device")
            return torch.from_numpy(self._take(body)).to(self.device(node["device"]))
        if tag == "$torch_dtype":
            dtype = getattr(torch, body, None) if isinstance(body, str) else None
            expect(isinstance(dtype, torch.dtype), f"unknown torch dtype {body!r:.80}")
            return dtype
        if tag in ("$numpy_type", "$numpy_dtype"):
            try:
                dtype = np.dtype(body) if isinstance(body, str) else None
            except TypeError:
                dtype = None
            expect(dtype is not None and not dtype.hasobject and dtype.kind in _ARRAY_KINDS,
                    f"bad NumPy dtype {body!r:.80}")
            return dtype.type if tag == "$numpy_type" else dtype
        if tag == "$device":
            expect(isinstance(body, str), "bad $device")
            try:
                return torch.device(body)
            except (RuntimeError, TypeError):
                corrupt(f"bad device {body!r:.80}")
        if tag == "$unsaved":
            expect(isinstance(body, dict) and isinstance(body.get("type"), str)
                    and isinstance(body.get("repr"), str), "bad $unsaved")
            return UnsavedValue(body["type"], body["repr"])
        expect(len(node) == 1 and isinstance(tag, str) and tag.startswith("$"),
               f"unknown tag {tag!r:.80}")
        built = self.build(tag[1:], self.decode(body))
        expect(built is not None, f"unknown tag {tag!r:.80}")
        return built


# ----------------------------------------------------------------------------- file I/O


def _json_array(obj) -> np.ndarray:
    text = json.dumps(obj, allow_nan=False, ensure_ascii=False, sort_keys=False)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def write(path, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``header`` and ``arrays`` to ``path`` atomically (:func:`probmix.io.atomic.replaced`:
    temporary file, fsync, rename; a symlink's target replaced, an existing file's mode kept)."""
    members = {_HEADER: _json_array(header), **arrays}
    with replaced(path) as tmp, open(tmp, "wb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, array in members.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_STORED
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _parse_npy(raw: bytes) -> np.ndarray:
    """One ``.npy`` member's bytes to an array, its declared size checked before any copy."""
    buf = io.BytesIO(raw)
    version = np.lib.format.read_magic(buf)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject or dtype.kind not in _ARRAY_KINDS or dtype.itemsize == 0:
        raise ValueError(f"an array of dtype {dtype} (only numbers and text are stored)")
    count = math.prod(shape)
    offset = buf.tell()
    if count * dtype.itemsize != len(raw) - offset:
        raise ValueError(f"an array of shape {shape} ({dtype}) declared over "
                         f"{len(raw) - offset} bytes")
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    array = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    return array.copy(order="K")


def read(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the arrays of a probmix file (format and version checked)."""
    with open(path, "rb") as f:  # a missing file raises FileNotFoundError, naming it
        try:
            with zipfile.ZipFile(f) as zf:
                infos = zf.infolist()
                names = [i.filename for i in infos]
                if len(set(names)) != len(names):
                    raise ValueError("duplicate members")
                if f"{_HEADER}.npy" not in names:
                    raise SavedFileError(
                        f"{os.fspath(path)!r} is an archive without a probmix header (members "
                        f"{names[:5]}); it was not written by probmix's save().")
                size = os.fstat(f.fileno()).st_size
                for info in infos:  # stored .npy members within the file: no zip bombs
                    if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(
                            ".npy") or not info.file_size == info.compress_size <= size:
                        raise ValueError(f"unexpected member {info.filename!r}")
                raw = _parse_npy(zf.read(f"{_HEADER}.npy"))
                if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > _MAX_HEADER_BYTES:
                    raise ValueError("a header that is not UTF-8 bytes")
                header = json.loads(raw.tobytes().decode("utf-8"))
                _check_header(header, path)
                arrays = {i.filename[:-4]: _parse_npy(zf.read(i)) for i in infos
                          if i.filename != f"{_HEADER}.npy"}
        except SavedFileError:
            raise
        except _DAMAGE as err:
            raise SavedFileError(
                f"{os.fspath(path)!r} is not a readable probmix file ({type(err).__name__}: "
                f"{err}). It is damaged (truncated or altered) or of another format; save the "
                "fit again."
            ) from None
    return header, arrays


def _check_header(header, path) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SavedFileError(f"{os.fspath(path)!r} has no probmix header; it was not written "
                             "by probmix's save().")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        corrupt(f"format_version {version!r:.40}")
    if version > FORMAT_VERSION:
        written = header.get("versions", {})
        written = written.get("probmix", "?") if isinstance(written, dict) else "?"
        raise SavedFileError(
            f"{os.fspath(path)!r} has format version {version}, written by probmix {written}; "
            f"this probmix reads format versions up to {FORMAT_VERSION}. Upgrade probmix to "
            "load it."
        )
    for key, kind in (("kind", str), ("state", dict), ("versions", dict)):
        expect(isinstance(header.get(key), kind), f"header field {key!r}")


def device_mapper(device):
    """Function: saved device string -> device to load onto (CPU when CUDA is missing)."""
    if device is not None:
        target = resolve_device(device)
        if target.type == "meta":
            raise ValueError("device='meta' holds shapes but no values, so a loaded fit could "
                             "not predict; pass device='cpu' or a CUDA device.")
        return lambda saved: target

    def mapper(saved: str) -> torch.device:
        try:
            dev = torch.device(saved)
        except (RuntimeError, TypeError):
            corrupt(f"bad device {saved!r:.80}")
        if dev.type == "cpu" or (dev.type == "cuda" and torch.cuda.is_available()
                                 and (dev.index or 0) < torch.cuda.device_count()):
            return dev
        warnings.warn(f"The file was saved on device {saved!r}, which is not available here; "
                      "loading onto the CPU (pass device=... to choose).", UserWarning,
                      stacklevel=4)
        return torch.device("cpu")

    return mapper
