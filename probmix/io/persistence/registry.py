"""Which classes a probmix file holds: a name -> class registry the classes fill themselves.

A class joins with the :func:`register` decorator and gives its state:

* ``obj._probmix_state()`` returns a :class:`State` (its fields as numbers, strings, arrays,
  tensors, and lists and dicts of them; and the models declared beside them), or None when
  this instance cannot be declared (it is then stored by reference, as code is);
* ``cls._from_probmix_state(fields, context)`` rebuilds an instance from the decoded fields
  and a :class:`LoadContext`, raising TypeError or ValueError when they do not fit (reported
  as a damaged file).

Three roles: ``"file"`` classes are what a file holds (its header ``kind``: Fit, KMeans,
MeanShift), ``"model"`` classes are declared in a header's ``model`` entry by their fields
(GaussianMixture), and ``"value"`` classes may appear inside a declaration as ``{"$name":
fields}`` (``$prior``). Estimators whose state is their attributes inherit
:class:`AttributeState`.

Persistence imports none of these classes: they import it, and register on import.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import warnings

from probmix._versions import runtime_versions
from probmix.io.persistence import format as fmt

__all__ = ["State", "LoadContext", "AttributeState", "SavedProgram", "register", "save",
           "save_as", "load", "load_as"]

_CLASSES: dict[str, tuple[type, str]] = {}  # name -> (class, role)
_ROLES = ("file", "model", "value")


def register(name: str, *, role: str = "file"):
    """Class decorator: files (or declarations) name the class ``name``."""
    if role not in _ROLES:
        raise ValueError(f"role must be one of {_ROLES}; got {role!r}.")

    def decorate(cls):
        known = _CLASSES.get(name)
        if known is not None and known[0].__qualname__ != cls.__qualname__:
            raise ValueError(f"{name!r} is already registered for {known[0].__qualname__}.")
        _CLASSES[name] = (cls, role)
        return cls

    return decorate


@dataclasses.dataclass
class State:
    """What a class gives persistence.

    Attributes
    ----------
    fields : dict
        Name -> value, saved exactly (a value the format cannot hold raises TypeError).
    lenient : tuple of str
        Fields whose unstorable values are kept by repr, with a warning (see UnsavedValue).
    models : dict
        Header entry -> model, each declared by its own state (a registered model class) or
        by reference (a program: module and name, never its code).
    """

    fields: dict
    lenient: tuple = ()
    models: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class LoadContext:
    """What ``_from_probmix_state`` gets beside the fields.

    Attributes
    ----------
    device : callable
        Saved device string -> the device to load onto.
    models : dict
        Header entry -> the rebuilt model (or what the caller passed as ``model=``).
    """

    device: object
    models: dict = dataclasses.field(default_factory=dict)


class AttributeState:
    """Persistence for an estimator whose state is its attributes (``vars``).

    Loading rebuilds it through its constructor (so the constructor's checks run on what the
    file says) from the saved settings, then restores every attribute.
    """

    def _probmix_state(self) -> State:
        return State(dict(vars(self)))

    @classmethod
    def _from_probmix_state(cls, fields: dict, context: LoadContext):
        params = [p for p in inspect.signature(cls).parameters.values()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        estimator = cls(**{p.name: fields[p.name] for p in params if p.name in fields})
        estimator.__dict__.update(fields)
        return estimator


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


# ----------------------------------------------------------------------------- declarations


def _name_of(obj, role: str) -> str | None:
    """The registered name of ``obj``'s exact class in ``role``, or None."""
    return next((name for name, (cls, r) in _CLASSES.items()
                 if r == role and type(obj) is cls), None)


def _state(obj) -> State | None:
    state = obj._probmix_state()
    return state if state is None or isinstance(state, State) else State(dict(state))


def _declare_value(value):
    name = _name_of(value, "value")
    state = _state(value) if name is not None else None
    return None if state is None else (name.lower(), state.fields)


def _build_value(tag: str, fields):
    cls = next((cls for name, (cls, role) in _CLASSES.items()
                if role == "value" and name.lower() == tag), None)
    if cls is None:
        return None
    fmt.expect(isinstance(fields, dict), f"the fields of ${tag}")
    return cls._from_probmix_state(fields, LoadContext(device=None))


def _reference(model) -> tuple[str, str]:
    """(module, qualname) naming a program, "?" where missing: the same on save and load."""
    owner = model if hasattr(model, "__qualname__") else type(model)
    return (str(getattr(owner, "__module__", None) or "?"),
            str(getattr(owner, "__qualname__", None) or "?"))


def _declare_model(model, enc: fmt.Encoder) -> dict:
    """A model as JSON: a registered model class by its fields, anything else by reference."""
    name = _name_of(model, "model")
    state = _state(model) if name is not None else None
    if state is not None:
        return {"kind": name, **{key: enc.encode(value, f"model.{key}", strict=True,
                                                 declarations=True)
                                 for key, value in state.fields.items()}}
    module, qualname = _reference(model)
    return {"kind": "code", "module": module, "qualname": qualname, "repr": repr(model)[:2000]}


def _rebuild_model(decl, dec: fmt.Decoder, model):
    fmt.expect(isinstance(decl, dict) and isinstance(decl.get("kind"), str),
               "model declaration")
    kind = decl["kind"]
    if kind == "code":
        saved = SavedProgram(str(decl.get("module")), str(decl.get("qualname")),
                             str(decl.get("repr")))
        if model is None:
            return saved
        if not callable(model):
            raise TypeError(f"model must be the Pyro program the fit was made with (a callable, "
                            f"{saved.module}.{saved.qualname}); got {type(model).__name__}.")
        module, qualname = _reference(model)
        if (module, qualname) != (saved.module, saved.qualname):
            warnings.warn(f"The fit was saved with the model {saved.module}.{saved.qualname}; "
                          f"loading it with {module}.{qualname} instead.", UserWarning,
                          stacklevel=4)
        return model
    cls, role = _CLASSES.get(kind, (None, None))
    fmt.expect(role == "model", "model declaration")
    if model is not None:
        raise ValueError(f"model= is for fits of custom programs; this file declares its "
                         f"probmix.{kind} itself. Call probmix.load(path) without model=.")
    fields = dec.decode_checked({"$dict": {k: v for k, v in decl.items() if k != "kind"}},
                                "the model declaration")
    try:
        return cls._from_probmix_state(fields, LoadContext(device=dec.device))
    except (TypeError, ValueError) as err:
        fmt.corrupt(f"the model declaration does not build a {kind} ({err})")


# ----------------------------------------------------------------------------- files


def _file_name(cls) -> str | None:
    """The registered file kind of ``cls`` or of the nearest class it derives from."""
    for base in cls.__mro__:
        name = next((n for n, (c, role) in _CLASSES.items() if role == "file" and c is base),
                    None)
        if name is not None:
            return name
    return None


def save(obj, path) -> None:
    """Write ``obj`` (of a registered file class) to ``path``, atomically."""
    kind = _file_name(type(obj))
    if kind is None:
        names = " or ".join(f"probmix.{n}" for n, (_, r) in _CLASSES.items() if r == "file")
        raise TypeError(f"save writes a {names}; got {type(obj).__name__}.")
    save_as(obj, kind, path)


def save_as(obj, kind: str, path) -> None:
    """Write ``obj`` under the file kind ``kind`` (see :func:`save`)."""
    state = _state(obj)
    enc = fmt.Encoder(_declare_value)
    fields = {name: enc.encode(value, f"{kind}.{name}", strict=name not in state.lenient)
              for name, value in state.fields.items()}
    header = {"format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION, "kind": kind}
    if kind != "Fit":  # format 1: estimators name their class (for reference only)
        header["class"] = f"{type(obj).__module__}.{type(obj).__qualname__}"
    header["versions"] = runtime_versions()
    for entry, model in state.models.items():
        header[entry] = _declare_model(model, enc)
    header["state"] = fields
    fmt.write(path, header, enc.arrays)


def load_as(cls, path, *, device=None):
    """Read a file holding a ``cls`` (or the registered class ``cls`` derives from)."""
    header, arrays = fmt.read(path)
    expected = _file_name(cls)
    if header["kind"] != expected:
        raise fmt.SavedFileError(f"{os.fspath(path)!r} holds a {header['kind']}, not a "
                                 f"{expected}; use probmix.load(path) to read whatever it holds.")
    return _load(cls, header, arrays, model=None, device=device)


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
    header, arrays = fmt.read(path)
    kind = header["kind"]
    cls, role = _CLASSES.get(kind, (None, None))
    if role != "file":
        raise fmt.SavedFileError(f"{os.fspath(path)!r} holds a {kind!r:.40}, which this probmix "
                                 "cannot read; upgrade probmix.")
    if model is not None and "model" not in header:
        raise ValueError(f"model= is for fits; {os.fspath(path)!r} holds a {kind}.")
    return _load(cls, header, arrays, model=model, device=device)


def _load(cls, header, arrays, *, model, device):
    dec = fmt.Decoder(arrays, fmt.device_mapper(device), _build_value)
    context = LoadContext(device=dec.device)
    if "model" in header:
        context.models["model"] = _rebuild_model(header["model"], dec, model)
    fields = {name: dec.decode_checked(node, f"{cls.__name__} field {name!r}")
              for name, node in header["state"].items()}
    try:
        return cls._from_probmix_state(fields, context)
    except fmt.SavedFileError:
        raise
    except (TypeError, ValueError) as err:
        fmt.corrupt(f"the saved state does not build a {cls.__name__} ({err})")
