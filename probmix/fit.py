"""``probmix.fit``: one entry point that dispatches a model and data to an engine."""

from __future__ import annotations

from probmix.gaussian_mixture import GaussianMixture
from probmix.result import Fit

__all__ = ["fit", "ENGINES"]

ENGINES = ("map",)


def fit(model, x, engine: str = "map", **options) -> Fit:
    """Fit a declared mixture model to data.

    Parameters
    ----------
    model : GaussianMixture or callable
        A :class:`probmix.GaussianMixture`, or a Pyro mixture program ``program(x)`` (see
        "Declaring your own model" in the docs).
    x : array-like (N, D)
    engine : {"map"}
        "map": the posterior mode. Closed-form EM for a GaussianMixture
        (:func:`probmix.engines.em.fit_em`, options ``init``, ``n_init``, ``max_iter``, ``tol``,
        ``reg_covar``, ``sample_weight``, ``warm_start``, ``verbose``); gradient MAP
        (AutoDelta + TraceEnum_ELBO, :func:`probmix.engines.gradient_map.fit_gradient_map`) for
        any other program, or for a GaussianMixture with ``method="gradient"``.
    **options
        Keyword-only options of the engine; every engine takes ``seed``, ``device``, ``dtype``.

    Returns
    -------
    Fit
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}.")
    method = options.pop("method", "em" if isinstance(model, GaussianMixture) else "gradient")
    if method == "em":
        if not isinstance(model, GaussianMixture):
            raise ValueError("method='em' needs a probmix.GaussianMixture; custom programs use "
                             "method='gradient'.")
        from probmix.engines.em import fit_em

        return fit_em(model, x, **options)
    if method == "gradient":
        if not (isinstance(model, GaussianMixture) or callable(model)):
            raise TypeError(f"model must be a GaussianMixture or a Pyro program (a callable); "
                            f"got {type(model).__name__}.")
        from probmix.engines.gradient_map import fit_gradient_map

        return fit_gradient_map(model, x, **options)
    raise ValueError(f"method must be 'em' or 'gradient' for engine='map'; got {method!r}.")
