"""The engine registry: every (engine, method) that :func:`probmix.fit` can run, in one table.

Each entry names the function that runs it (imported on first use), whether it needs a
conjugate :class:`probmix.GaussianMixture` (a closed-form algorithm) or takes any Pyro mixture
program, and the model kinds it is the engine's default for. Its options and their defaults
are read from the function's signature, so they cannot drift from the code.
:func:`probmix.fit`, :func:`probmix.compare`, :func:`probmix.select` and the command line all
read this table.

Old option names are translated here, in one place, with a ``DeprecationWarning``: the
engines know only the new names (one name per concept: ``method``, ``progress``, ``seed``,
``num_samples``/``num_warmup``/``num_chains``, ``max_iter``, ``init="k-means++"``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import warnings
from dataclasses import dataclass, field
from functools import cached_property

__all__ = ["CLOSED_FORM", "ENGINES", "MODEL_KINDS", "Method", "REGISTRY", "default_method",
           "lookup", "methods", "model_kind", "resolve"]

ENGINES = ("map", "svi", "mcmc")
#: "gmm": a :class:`probmix.GaussianMixture`; "program": any other Pyro mixture program.
MODEL_KINDS = ("gmm", "program")


@dataclass(frozen=True)
class Method:
    """One algorithm of one engine.

    Attributes
    ----------
    engine, method : str
    function : str
        Dotted path of the function ``run(model, x, **options) -> Fit``.
    conjugate : bool
        True: closed-form, for a :class:`probmix.GaussianMixture` only; False: any program.
    default_for : tuple of str
        The model kinds (:data:`MODEL_KINDS`) for which it is the engine's default method.
    summary : str
        One line for tables and ``--help``.
    aliases : dict of str to str
        Other accepted names of an option (no warning), e.g. SVI's ``max_iter`` for ``steps``.
    renamed_values : dict of str to dict
        Deprecated values of an option and their new spelling, e.g. ``init="kmeans++"``.
    """

    engine: str
    method: str
    function: str
    conjugate: bool
    default_for: tuple = ()
    summary: str = ""
    aliases: dict = field(default_factory=dict)
    renamed_values: dict = field(default_factory=dict)

    def load(self):
        """The function that runs this method."""
        module, name = self.function.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)

    @cached_property
    def options(self) -> dict:
        """Option name -> default, from the function's keyword-only parameters."""
        params = inspect.signature(self.load()).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def accepts(self, option: str) -> bool:
        """Whether ``option`` (or an alias of it) is an option of this method."""
        return option in self.options or option in self.aliases

    def check_options(self, options) -> None:
        """Raise a ValueError naming every unknown option, with the valid ones listed."""
        valid = sorted(self.options)
        for name in options:
            if self.accepts(name):
                continue
            close = difflib.get_close_matches(name, valid + sorted(self.aliases), n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(
                f"unknown option {name!r} for engine={self.engine!r}, "
                f"method={self.method!r}.{hint} Valid options: {', '.join(valid)}.")


_GMM, _ANY = ("gmm",), ("gmm", "program")
_KPP = {"init": {"kmeans++": "k-means++"}}

#: (engine, method) -> :class:`Method`; the first method of an engine is listed first in help.
REGISTRY: dict = {(m.engine, m.method): m for m in (
    Method("map", "em", "probmix.infer.map.em.fit_em", True, _GMM,
           "closed-form EM (streaming, distributed)", renamed_values=_KPP),
    Method("map", "gradient", "probmix.infer.map.gradient.fit_gradient_map", False, ("program",),
           "L-BFGS on TraceEnum_ELBO with an AutoDelta guide"),
    Method("map", "online", "probmix.infer.map.online_em.fit_online_em", True, (),
           "online EM, one pass over a stream of chunks", renamed_values=_KPP),
    Method("svi", "stochastic", "probmix.infer.vi.svi.fit_svi", False, _ANY,
           "Pyro SVI with TraceEnum_ELBO and an autoguide", aliases={"max_iter": "steps"}),
    Method("svi", "cavi", "probmix.infer.vi.cavi.fit_cavi", True, (),
           "closed-form mean-field coordinate ascent"),
    Method("mcmc", "nuts", "probmix.infer.mcmc.nuts.fit_nuts", False, _ANY,
           "Pyro NUTS with z summed out"),
    Method("mcmc", "gibbs", "probmix.infer.mcmc.gibbs.fit_gibbs", True, (),
           "blocked Gibbs sampler, chains batched"),
)}

#: Deprecated option name -> its new name (translated when the method has the new one).
RENAMED = {"kernel": "method", "warmup": "num_warmup", "chains": "num_chains",
           "verbose": "progress"}


def methods(engine: str) -> tuple:
    """The methods of ``engine``, in table order."""
    _check_engine(engine)
    return tuple(m for (e, m) in REGISTRY if e == engine)


def model_kind(model) -> str:
    """"gmm" for a :class:`probmix.GaussianMixture`, "program" for another callable."""
    from probmix.model.gaussian_mixture import GaussianMixture

    if isinstance(model, GaussianMixture):
        return "gmm"
    if callable(model):
        return "program"
    raise TypeError(f"model must be a GaussianMixture or a Pyro program (a callable); "
                    f"got {type(model).__name__}.")


#: The closed-form method of each engine for a GaussianMixture: what the command line
#: (``probmix fit --engine``, ``compare``) and :func:`probmix.compare` run by default.
CLOSED_FORM = {"map": "em", "svi": "cavi", "mcmc": "gibbs"}


def default_method(engine: str, model, *, closed_form: bool = False) -> str:
    """The method ``engine`` runs for ``model`` when none is given.

    ``closed_form=True`` (the command line and :func:`probmix.compare`): the exact closed
    forms of :data:`CLOSED_FORM` for a GaussianMixture (EM, CAVI, Gibbs), the generic
    methods for other programs.
    """
    kind = model_kind(model)
    if closed_form and kind == "gmm":
        return CLOSED_FORM[engine]
    return next(m for m in methods(engine) if kind in REGISTRY[engine, m].default_for)


def lookup(engine: str, method: str) -> Method:
    """The registry entry of (engine, method); a ValueError lists the valid ones."""
    _check_engine(engine)
    entry = REGISTRY.get((engine, method))
    if entry is None:
        valid = methods(engine)
        close = difflib.get_close_matches(str(method), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"method must be one of {valid} for engine={engine!r}; got "
                         f"{method!r}.{hint}")
    return entry


def resolve(model, engine: str, options: dict, *, stacklevel: int = 2):
    """The method to run and its options, deprecated names translated and every name checked.

    Parameters
    ----------
    model : GaussianMixture or callable
    engine : {"map", "svi", "mcmc"}
    options : dict
        The caller's options, ``method=`` (or the deprecated ``kernel=``) among them.
    stacklevel : int
        Where the DeprecationWarnings point, as ``warnings.warn`` counts from the caller of
        ``resolve``: 1 is that caller, 2 (default) its caller (the user of ``probmix.fit``).

    Returns
    -------
    (Method, dict)
        The entry and the options to call its function with (aliases resolved).
    """
    _check_engine(engine)
    kind = model_kind(model)
    options = dict(options)
    level = stacklevel + 2  # counted from _renamed: _renamed, resolve, its caller, ...
    if "kernel" in options:
        if engine != "mcmc":
            raise ValueError(f"kernel= names the MCMC algorithm; for engine={engine!r} use "
                             f"method= (one of {methods(engine)}).")
        _renamed(options, "kernel", "method", level)
    method = options.pop("method", None)
    entry = lookup(engine, default_method(engine, model) if method is None else method)
    if entry.conjugate and kind != "gmm":
        generic = next(m for m in methods(engine) if not REGISTRY[engine, m].conjugate)
        raise ValueError(f"method={entry.method!r} is closed-form for a probmix.GaussianMixture "
                         f"only; for a custom program use method={generic!r}.")
    for old, new in RENAMED.items():
        if old in options and old != "kernel" and entry.accepts(new) and not entry.accepts(old):
            _renamed(options, old, new, level)
    entry.check_options(options)
    for alias, name in entry.aliases.items():
        if alias in options:
            if name in options:
                raise ValueError(f"{alias}= and {name}= are the same option of "
                                 f"method={entry.method!r}; pass one.")
            options[name] = options.pop(alias)
    for name, renamed in entry.renamed_values.items():
        value = options.get(name)
        if isinstance(value, str) and value in renamed:
            warnings.warn(f"{name}={value!r} is deprecated; use {name}={renamed[value]!r}.",
                          DeprecationWarning, stacklevel=level - 1)
            options[name] = renamed[value]
    return entry, options


def _renamed(options: dict, old: str, new: str, stacklevel: int) -> None:
    if new in options:
        raise ValueError(f"{old}= is the deprecated name of {new}=; pass only {new}=.")
    warnings.warn(f"{old}= is deprecated; use {new}= (the same option under its new name).",
                  DeprecationWarning, stacklevel=stacklevel)
    options[new] = options.pop(old)


def _check_engine(engine) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}.")
