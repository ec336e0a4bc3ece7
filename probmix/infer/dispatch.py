"""``probmix.fit``: one entry point that dispatches a model and data to an engine."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import numpy as np

from probmix._threads import threads_for
from probmix.infer.registry import ENGINES, resolve
from probmix.results.result import Fit

__all__ = ["fit", "ENGINES"]


def fit(model, x, engine: str = "map", *, standardize: bool = False, **options) -> Fit:
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
        - "mcmc": posterior draws. ``method="nuts"`` (Pyro NUTS with z enumerated, any
          program: :func:`probmix.infer.mcmc.nuts.fit_nuts`) or ``method="gibbs"`` (blocked
          Gibbs for a GaussianMixture: :func:`probmix.infer.mcmc.gibbs.fit_gibbs`).

        The table of engines, methods and their options is :mod:`probmix.infer.registry`.
    standardize : bool
        Fit a :class:`probmix.GaussianMixture` on columns scaled to mean 0 and sd 1 and
        report the fit in the data's own units (the command line's ``--standardize``; see
        :func:`probmix.results.units.to_original_units`): the prior and the ridge then act on
        every column alike, whatever its units. In-memory data only.
    **options
        Keyword-only options of the method (``method=`` among them); every method takes
        ``seed`` (an int, or None for fresh OS entropy: the seed used is recorded in
        ``fit.options["seed"]``), ``device`` and ``dtype``. Deprecated names still work with a
        DeprecationWarning: ``kernel=`` (MCMC's ``method=``), ``warmup=``/``chains=``
        (``num_warmup=``/``num_chains=``), ``verbose=`` (``progress=``) and
        ``init="kmeans++"`` (``"k-means++"``).

    Raises
    ------
    ValueError
        An unknown engine, method or option (the message lists the valid ones).

    Returns
    -------
    Fit
        With ``feature_names`` the columns of a DataFrame ``x`` (checked at predict time).

    Notes
    -----
    Small problems (N · D · K below two million values) run with one torch thread: on few
    cores two threads fight over the many small operations and run several times slower.

    Thread safety: fits may run in several threads at once and each gives what it gives
    alone. The Pyro engines (SVI ``"stochastic"``, NUTS, gradient MAP) share Pyro's
    process-wide state, so they hold one lock and run one at a time; EM, CAVI, Gibbs and
    the baselines run concurrently (see :mod:`probmix._global_state`).
    """
    from probmix.io.feature_names import feature_names_of

    if not isinstance(standardize, (bool, np.bool_)):
        raise TypeError(f"standardize must be True or False; got {standardize!r}.")
    entry, options = resolve(model, engine, options, stacklevel=2)
    run = entry.load()
    size = _size(x)
    names = feature_names_of(x)
    with (contextlib.nullcontext() if size is None
          else threads_for(size * getattr(model, "n_components", 1))):
        result = _standardized(run, model, x, size, options) if standardize else \
            run(model, x, **options)
    if names is not None and len(names) == result.n_features:
        result = dataclasses.replace(result, feature_names=names)
    return result


def _standardized(run, model, x, size, options) -> Fit:
    """``run`` on (x - column means) / column sds, the fit put back in the units of x."""
    from probmix.io.data import as_data
    from probmix.model.gaussian_mixture import GaussianMixture
    from probmix.results.units import standardize_columns, to_original_units

    if not isinstance(model, GaussianMixture):
        raise TypeError("standardize=True rescales a probmix.GaussianMixture's parameters; got "
                        f"{type(model).__name__}. Standardise the data yourself for a custom "
                        "program, or drop standardize.")
    if size is None:
        raise ValueError("standardize=True needs data in memory (an array or DataFrame); got a "
                         "streaming source. Load the data, or drop standardize.")
    data = as_data(x).cpu().numpy()  # (N, D) float64
    z, center, sd = standardize_columns(data)
    return to_original_units(run(model, z, **options), data, center, sd)


def _size(x) -> int | None:
    """N · D of in-memory data without converting it; None when unknown before reading it.

    A path, a callable or an iterator of chunks has no size until it is read (a str is not
    N · D characters); a list of (n_i, D) chunks has the sum of their sizes.
    """
    if isinstance(x, (str, bytes, os.PathLike, Iterator)) or (
            callable(x) and not hasattr(x, "shape")):
        return None
    shape = getattr(x, "shape", None)
    if shape is not None:
        return int(np.prod(shape))
    try:
        first = x[0]
    except (TypeError, IndexError, KeyError):
        return None
    if getattr(first, "ndim", 0) == 2:  # a list of chunks
        return int(sum(np.prod(chunk.shape) for chunk in x))
    return len(x) * (len(first) if hasattr(first, "__len__") else 1)
