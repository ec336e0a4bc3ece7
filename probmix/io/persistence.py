"""Saving and loading fits and baselines: plain arrays plus a JSON header, never code.

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
``$numpy_dtype``, ``$device`` and ``$unsaved`` (see :class:`UnsavedValue`).

Loading reads that format and nothing else: no pickle, no ``torch.load``, no import
and no evaluation of anything in the file; a damaged or foreign file raises
:class:`SavedFileError`. Writing goes to a temporary file in the target folder
which then replaces the target in one rename, so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import inspect
import json
import math
import os
import struct
import tempfile
import warnings
import zipfile
import zlib

import numpy as np
import torch

from probmix._versions import runtime_versions

__all__ = ["FORMAT", "FORMAT_VERSION", "SavedFileError", "SavedProgram", "UnsavedValue",
           "load", "load_estimator", "save_estimator", "save_fit"]

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


@dataclasses.dataclass(frozen=True)
class SavedProgram:
    """Stands in for a custom Pyro program, whose code a probmix file never stores.

    Calling it raises; load the file with ``probmix.load(path, model=program)`` to get a
    Fit that can predict.

    Attributes
    ----------
    module, qualname : str
        Where the program was defined when the fit was saved (for reference only: nothing
        is imported).
    text : str
        Its ``repr`` at save time.
    """

    module: str
    qualname: str
    text: str

    def __call__(self, *args, **kwargs):
        raise RuntimeError(
            f"This fit was saved from the custom model {self.module}.{self.qualname}; a probmix "
            "file stores no code, so the model is not available. Load the file with "
            "probmix.load(path, model=<that program>) to predict with it."
        )


# ----------------------------------------------------------------------------- encoding


class _Encoder:
    """Turns values into JSON with tagged forms, collecting arrays under keys a0, a1, ..."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def _store(self, array: np.ndarray) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = array
        return key

    def encode(self, value, where: str, *, strict: bool):
        """JSON for ``value``; ``strict`` raises on what cannot be stored, else warns."""
        if value is None or isinstance(value, (bool, str)):
            return value
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


def _corrupt(message: str):
    raise SavedFileError(f"Damaged probmix file: {message}.")


def _expect(cond: bool, message: str) -> None:
    if not cond:
        _corrupt(message)


class _Decoder:
    """Inverse of :class:`_Encoder`, checking every node (never executes anything)."""

    def __init__(self, arrays: dict[str, np.ndarray], device):
        self.arrays = arrays
        self.device = device  # callable: saved device string -> torch.device to load onto
        self.used: set[str] = set()

    def _take(self, key) -> np.ndarray:
        _expect(isinstance(key, str) and key in self.arrays, f"missing array {key!r}")
        self.used.add(key)
        return self.arrays[key]

    def decode_checked(self, node, where: str):
        """``decode``, any failure on a malformed node reported as a damaged file."""
        try:
            return self.decode(node)
        except SavedFileError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, RecursionError) as err:
            _corrupt(f"{where} ({type(err).__name__}: {err})")

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        _expect(isinstance(node, dict) and len(node) >= 1, f"unexpected value {node!r:.80}")
        tag = next(iter(node))
        body = node[tag]
        if tag == "$dict":
            _expect(isinstance(body, dict) and len(node) == 1, "bad $dict")
            return {k: self.decode(v) for k, v in body.items()}
        if tag == "$items":
            _expect(isinstance(body, list) and all(isinstance(p, list) and len(p) == 2
                                                   for p in body), "bad $items")
            out = {}
            for k, v in body:
                key = self.decode(k)
                _expect(isinstance(key, (str, int, float, bool, tuple, type(None))),
                        f"unhashable dict key {key!r:.80}")
                out[key] = self.decode(v)
            return out
        if tag == "$tuple":
            _expect(isinstance(body, list), "bad $tuple")
            return tuple(self.decode(v) for v in body)
        if tag == "$float":
            _expect(body in ("nan", "inf", "-inf"), f"bad $float {body!r:.80}")
            return float(body)
        if tag == "$array":
            return self._take(body)
        if tag == "$npscalar":
            arr = self._take(body)
            _expect(arr.ndim == 0, "a NumPy scalar that is not 0-d")
            return arr[()]
        if tag == "$tensor":
            _expect(isinstance(node.get("device"), str), "a tensor without its device")
            return torch.from_numpy(self._take(body)).to(self.device(node["device"]))
        if tag == "$torch_dtype":
            dtype = getattr(torch, body, None) if isinstance(body, str) else None
            _expect(isinstance(dtype, torch.dtype), f"unknown torch dtype {body!r:.80}")
            return dtype
        if tag in ("$numpy_type", "$numpy_dtype"):
            try:
                dtype = np.dtype(body) if isinstance(body, str) else None
            except TypeError:
                dtype = None
            _expect(dtype is not None and not dtype.hasobject and dtype.kind in _ARRAY_KINDS,
                    f"bad NumPy dtype {body!r:.80}")
            return dtype.type if tag == "$numpy_type" else dtype
        if tag == "$device":
            _expect(isinstance(body, str), "bad $device")
            try:
                return torch.device(body)
            except (RuntimeError, TypeError):
                _corrupt(f"bad device {body!r:.80}")
        if tag == "$unsaved":
            _expect(isinstance(body, dict) and isinstance(body.get("type"), str)
                    and isinstance(body.get("repr"), str), "bad $unsaved")
            return UnsavedValue(body["type"], body["repr"])
        _corrupt(f"unknown tag {tag!r:.80}")


# ----------------------------------------------------------------------------- file I/O


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_array(obj) -> np.ndarray:
    text = json.dumps(obj, allow_nan=False, ensure_ascii=False, sort_keys=False)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _write(path, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``header`` and ``arrays`` to ``path`` atomically (temporary file, then rename)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    members = {_HEADER: _json_array(header), **arrays}
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for key, array in members.items():
                    info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
                    info.compress_type = zipfile.ZIP_STORED
                    with zf.open(info, "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.asanyarray(array),
                                                  allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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


def _read(path) -> tuple[dict, dict[str, np.ndarray]]:
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
        _corrupt(f"format_version {version!r:.40}")
    if version > FORMAT_VERSION:
        written = header.get("versions", {})
        written = written.get("probmix", "?") if isinstance(written, dict) else "?"
        raise SavedFileError(
            f"{os.fspath(path)!r} has format version {version}, written by probmix {written}; "
            f"this probmix reads format versions up to {FORMAT_VERSION}. Upgrade probmix to "
            "load it."
        )
    for key, kind in (("kind", str), ("state", dict), ("versions", dict)):
        _expect(isinstance(header.get(key), kind), f"header field {key!r}")


def _device_mapper(device):
    """Function: saved device string -> device to load onto (CPU when CUDA is missing)."""
    from probmix.io.data import resolve_device

    if device is not None:
        target = resolve_device(device)
        return lambda saved: target

    def mapper(saved: str) -> torch.device:
        try:
            dev = torch.device(saved)
        except (RuntimeError, TypeError):
            _corrupt(f"bad device {saved!r:.80}")
        if dev.type == "cpu" or (dev.type == "cuda" and torch.cuda.is_available()
                                 and (dev.index or 0) < torch.cuda.device_count()):
            return dev
        warnings.warn(f"The file was saved on device {saved!r}, which is not available here; "
                      "loading onto the CPU (pass device=... to choose).", UserWarning,
                      stacklevel=4)
        return torch.device("cpu")

    return mapper


# ----------------------------------------------------------------------------- fits


def _declare_model(model, enc: _Encoder) -> dict:
    """The model as JSON: a GaussianMixture by its constructor arguments, else a reference."""
    from probmix.model.covariance import FAMILIES
    from probmix.model.gaussian_mixture import GaussianMixture
    from probmix.model.priors import Prior

    if type(model) is GaussianMixture and type(FAMILIES.get(model.family.name)) is type(
            model.family):
        prior = model.prior
        if isinstance(prior, Prior):
            prior = {"$prior": enc.encode({f.name: getattr(prior, f.name)
                                           for f in dataclasses.fields(Prior)},
                                          "model.prior", strict=True)}
        return {"kind": "GaussianMixture", "n_components": model.n_components,
                "covariance": model.family.name, "prior": prior,
                "weights_prior": model.weights_prior}
    owner = model if hasattr(model, "__qualname__") else type(model)
    return {"kind": "code", "module": str(getattr(owner, "__module__", None) or "?"),
            "qualname": str(getattr(owner, "__qualname__", "?")), "repr": repr(model)[:2000]}


def _rebuild_model(decl, dec: _Decoder, model):
    from probmix.model.gaussian_mixture import GaussianMixture
    from probmix.model.priors import Prior

    _expect(isinstance(decl, dict) and decl.get("kind") in ("GaussianMixture", "code"),
            "model declaration")
    if decl["kind"] == "code":
        saved = SavedProgram(str(decl.get("module")), str(decl.get("qualname")),
                             str(decl.get("repr")))
        if model is None:
            return saved
        if not callable(model):
            raise TypeError(f"model must be the Pyro program the fit was made with (a callable, "
                            f"{saved.module}.{saved.qualname}); got {type(model).__name__}.")
        owner = model if hasattr(model, "__qualname__") else type(model)
        if (getattr(owner, "__module__", None), getattr(owner, "__qualname__", None)) != (
                saved.module, saved.qualname):
            warnings.warn(f"The fit was saved with the model {saved.module}.{saved.qualname}; "
                          f"loading it with {getattr(owner, '__module__', '?')}."
                          f"{getattr(owner, '__qualname__', '?')} instead.", UserWarning,
                          stacklevel=4)
        return model
    if model is not None:
        raise ValueError("model= is for fits of custom programs; this file declares its "
                         "probmix.GaussianMixture itself. Call probmix.load(path) without model=.")
    prior = decl.get("prior")
    if isinstance(prior, dict):
        _expect(set(prior) == {"$prior"}, "prior declaration")
        fields = dec.decode_checked(prior["$prior"], "the prior")
        known = {f.name for f in dataclasses.fields(Prior)}
        _expect(isinstance(fields, dict) and set(fields) <= known, "prior fields")
        prior = Prior(**fields)
    try:
        return GaussianMixture(decl.get("n_components"), covariance=decl.get("covariance"),
                               prior=prior, weights_prior=decl.get("weights_prior"))
    except (TypeError, ValueError) as err:
        _corrupt(f"the model declaration does not build a GaussianMixture ({err})")


def _fit_field_checks() -> dict:
    def arr(v):
        return isinstance(v, np.ndarray)

    def opt_arr(v):
        return v is None or arr(v)

    def arrays(v):
        return isinstance(v, dict) and all(isinstance(k, str) and arr(a) for k, a in v.items())

    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool)

    return {
        "engine": lambda v: v in ("map", "svi", "mcmc"),
        "params": arrays, "draws": arrays, "sample_stats": arrays,
        "n_features": lambda v: integer(v) and v >= 1,
        "converged": lambda v: v is None or isinstance(v, bool),  # None: a sampler
        "n_iter": lambda v: integer(v) and v >= 0,
        "lower_bounds": arr, "losses": arr,
        "options": lambda v: isinstance(v, dict),
        "device": lambda v: isinstance(v, str),
        "dtype": lambda v: v in ("float32", "float64"),
        "center": opt_arr, "data": opt_arr, "assignment_draws": opt_arr,
        "scale": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
        and math.isfinite(v) and v > 0,
        "versions": lambda v: isinstance(v, dict),
    }


def save_fit(fit, path) -> None:
    """Write a :class:`~probmix.Fit` to ``path`` (see the module docstring for the format).

    Parameters
    ----------
    fit : Fit
    path : str or os.PathLike
        The file to write, exactly this name (``.npz`` is a good suffix); replaced atomically.

    Raises
    ------
    TypeError
        A parameter, draw or statistic is not a numeric array. (Option values the format
        cannot hold are stored by repr with a warning instead.)
    """
    from probmix.results.result import Fit

    if not isinstance(fit, Fit):
        raise TypeError(f"fit must be a probmix.Fit; got {type(fit).__name__}.")
    enc = _Encoder()
    state = {}
    for f in dataclasses.fields(Fit):
        if f.name == "model":
            continue
        value = getattr(fit, f.name)
        state[f.name] = enc.encode(value, f"fit.{f.name}", strict=f.name != "options")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "Fit",
              "versions": runtime_versions(), "model": _declare_model(fit.model, enc),
              "state": state}
    _write(path, header, enc.arrays)


def _load_fit(header, arrays, *, model, device):
    from probmix.results.result import Fit

    dec = _Decoder(arrays, _device_mapper(device))
    rebuilt = _rebuild_model(header.get("model"), dec, model)
    checks = _fit_field_checks()
    known = {f.name for f in dataclasses.fields(Fit)} - {"model"}
    state = header["state"]
    unknown = sorted(set(state) - known)
    if unknown:
        _corrupt(f"unknown Fit fields {unknown} (written by a newer probmix?)")
    fields = {}
    for name, node in state.items():
        value = dec.decode_checked(node, f"Fit field {name!r}")
        _expect(checks.get(name, lambda v: True)(value), f"Fit field {name!r}")
        fields[name] = value
    if "device" in fields:
        fields["device"] = str(dec.device(fields["device"]))
    return Fit(model=rebuilt, **fields)


# ----------------------------------------------------------------------------- baselines


def _estimator_classes() -> dict:
    from probmix.baselines.kmeans import KMeans
    from probmix.baselines.meanshift import MeanShift

    return {"KMeans": KMeans, "MeanShift": MeanShift}


def save_estimator(estimator, path) -> None:
    """Write a KMeans or MeanShift (its settings and, if fitted, its fitted state) to ``path``."""
    classes = _estimator_classes()
    kind = next((name for name, cls in classes.items() if isinstance(estimator, cls)), None)
    if kind is None:
        raise TypeError(f"estimator must be a probmix.KMeans or probmix.MeanShift; got "
                        f"{type(estimator).__name__}.")
    enc = _Encoder()
    state = {name: enc.encode(value, f"{kind}.{name}", strict=True)
             for name, value in vars(estimator).items()}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
              "class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
              "versions": runtime_versions(), "state": state}
    _write(path, header, enc.arrays)


def _load_estimator(cls, header, arrays, *, device):
    dec = _Decoder(arrays, _device_mapper(device))
    state = {name: dec.decode_checked(node, f"{cls.__name__}.{name}")
             for name, node in header["state"].items()}
    params = [p for p in inspect.signature(cls).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    try:  # rebuild through the constructor, so its checks run on what the file says
        estimator = cls(**{p.name: state[p.name] for p in params if p.name in state})
    except (TypeError, ValueError) as err:
        _corrupt(f"the saved settings do not build a {cls.__name__} ({err})")
    estimator.__dict__.update(state)
    return estimator


def load_estimator(cls, path, *, device=None):
    """Read a KMeans or MeanShift saved by ``save``; ``cls`` is the class asked for."""
    header, arrays = _read(path)
    expected = next(name for name, base in _estimator_classes().items() if issubclass(cls, base))
    if header["kind"] != expected:
        raise SavedFileError(f"{os.fspath(path)!r} holds a {header['kind']}, not a {expected}; "
                             "use probmix.load(path) to read whatever it holds.")
    return _load_estimator(cls, header, arrays, device=device)


def load(path, *, model=None, device=None):
    """Read a fit, KMeans or MeanShift written by ``save``, executing nothing from the file.

    Parameters
    ----------
    path : str or os.PathLike
    model : callable, optional
        For a fit of a custom Pyro program: the program (the file stores only its module and
        name). Without it the Fit's model is a :class:`SavedProgram`, so its parameters and
        draws can be read but predictions raise. Not accepted for GaussianMixture fits, which
        the file declares completely.
    device : str or torch.device, optional
        Where the result computes; default the device it was saved from (the CPU, with a
        warning, when that one is not available).

    Returns
    -------
    Fit, KMeans or MeanShift
        Arrays bit-identical to the saved ones; the Fit's ``versions`` are those that made it.

    Raises
    ------
    FileNotFoundError
        No such file.
    SavedFileError
        (a ValueError) The file is truncated, altered, not a probmix file, or of a newer format
        version.
    """
    header, arrays = _read(path)
    kind = header["kind"]
    if kind == "Fit":
        return _load_fit(header, arrays, model=model, device=device)
    classes = _estimator_classes()
    if kind not in classes:
        raise SavedFileError(f"{os.fspath(path)!r} holds a {kind!r:.40}, which this probmix "
                             "cannot read; upgrade probmix.")
    if model is not None:
        raise ValueError(f"model= is for fits; {os.fspath(path)!r} holds a {kind}.")
    return _load_estimator(classes[kind], header, arrays, device=device)
