"""``probmix.fit``: one entry point that dispatches a model and data to an engine."""

from __future__ import annotations

import numpy as np

from probmix._threads import threads_for
from probmix.model.gaussian_mixture import GaussianMixture
from probmix.results.result import Fit

__all__ = ["fit", "ENGINES"]

ENGINES = ("map", "svi", "mcmc")
_METHODS = {"map": ("em", "gradient", "online"), "svi": ("stochastic", "cavi"), "mcmc": ("nuts", "gibbs")}


def _engine_function(model, engine: str, method: str):
    """The function that runs ``engine`` with ``method`` (imported lazily: each is a module)."""
    is_gmm = isinstance(model, GaussianMixture)
    if not (is_gmm or callable(model)):
        raise TypeError(f"model must be a GaussianMixture or a Pyro program (a callable); "
                        f"got {type(model).__name__}.")
    if method not in _METHODS[engine]:
        key = "kernel" if engine == "mcmc" else "method"
        raise ValueError(f"{key} must be one of {_METHODS[engine]} for engine={engine!r}; "
                         f"got {method!r}.")
    conjugate_only = {"em": "method='gradient'", "online": "method='gradient'",
                      "cavi": "method='stochastic'",
                      "gibbs": "kernel='nuts'"}
    if method in conjugate_only and not is_gmm:
        raise ValueError(f"{method!r} is closed-form for a probmix.GaussianMixture only; for a "
                         f"custom program use {conjugate_only[method]}.")
    if method == "em":
        from probmix.infer.map.em import fit_em as run
    elif method == "online":
        from probmix.infer.map.online_em import fit_online_em as run
    elif method == "gradient":
        from probmix.infer.map.gradient import fit_gradient_map as run
    elif method == "stochastic":
        from probmix.infer.vi.svi import fit_svi as run
    elif method == "cavi":
        from probmix.infer.vi.cavi import fit_cavi as run
    elif method == "nuts":
        from probmix.infer.mcmc.nuts import fit_nuts as run
    else:
        from probmix.infer.mcmc.gibbs import fit_gibbs as run
    return run


def fit(model, x, engine: str = "map", **options) -> Fit:
    """Fit a declared mixture model to data.

    Parameters
    ----------
    model : GaussianMixture or callable
        A :class:`probmix.GaussianMixture`, or a Pyro mixture program ``program(x)`` (see
        "Declaring your own model" in the docs).
    x : array-like (N, D) or streaming source
        A streaming source (memory-mapped array, .npy path, HDF5 dataset, list of arrays,
        callable returning an iterator; see :func:`probmix.io.sources.as_source`) is read chunk
        by chunk by the EM engines (``method="em"`` or ``"online"``).
    engine : {"map", "svi", "mcmc"}
        - "map": the posterior mode. ``method="em"`` (closed-form EM, the default for a
          GaussianMixture: :func:`probmix.infer.map.em.fit_em`) or ``method="gradient"``
          (AutoDelta + TraceEnum_ELBO with L-BFGS, any program:
          :func:`probmix.infer.map.gradient.fit_gradient_map`) or ``method="online"``
          (single-pass stochastic EM over a stream of chunks:
          :func:`probmix.infer.map.online_em.fit_online_em`). EM streams a source chunk by
          chunk with ``chunk_size=`` and runs data-parallel with ``distributed=True``.
        - "svi": a variational posterior. ``method="stochastic"`` (Pyro SVI with
          TraceEnum_ELBO, any program: :func:`probmix.infer.vi.svi.fit_svi`) or
          ``method="cavi"`` (closed-form mean-field coordinate ascent for a GaussianMixture:
          :func:`probmix.infer.vi.cavi.fit_cavi`).
        - "mcmc": posterior draws. ``kernel="nuts"`` (Pyro NUTS with z enumerated, any
          program: :func:`probmix.infer.mcmc.nuts.fit_nuts`) or ``kernel="gibbs"`` (blocked
          Gibbs for a GaussianMixture: :func:`probmix.infer.mcmc.gibbs.fit_gibbs`).
    **options
        Keyword-only options of the engine; every engine takes ``seed``, ``device``, ``dtype``.

    Returns
    -------
    Fit

    Notes
    -----
    Small problems (N · D · K below two million values) run with one torch thread: on few
    cores two threads fight over the many small operations and run several times slower.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}.")
    is_gmm = isinstance(model, GaussianMixture)
    if engine == "mcmc":
        method = options.pop("kernel", "nuts")
    else:
        default = {"map": "em" if is_gmm else "gradient", "svi": "stochastic"}[engine]
        method = options.pop("method", default)
    run = _engine_function(model, engine, method)
    with threads_for(_size(x) * getattr(model, "n_components", 1)):
        return run(model, x, **options)


def _size(x) -> int:
    """N · D of an array-like without converting it (0 when it has no shape)."""
    shape = getattr(x, "shape", None)
    if shape is None:
        try:
            shape = (len(x), len(x[0]))
        except (TypeError, IndexError, KeyError):
            return 0
    return int(np.prod(shape))
