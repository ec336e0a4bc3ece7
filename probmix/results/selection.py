"""Model comparison and selection: PSIS-LOO and WAIC across fits, BIC/AIC/LOO against K.

PSIS-LOO comes from ArviZ (``arviz_stats.loo`` / ``arviz_stats.compare``) on each
fit's pointwise log-likelihood (z summed out). arviz-stats 0.8 has no WAIC, so
it is computed here from the same matrix (Watanabe 2010; Vehtari, Gelman &
Gabry 2017):

    lppd   = Σ_n log( (1/S) Σ_s p(x_n | θ_s) )
    p_waic = Σ_n Var_s[ log p(x_n | θ_s) ]
    elpd_waic = lppd - p_waic

All criteria are reported so that *higher elpd is better*; BIC and AIC, as
usual, are lower-is-better.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["compare_models", "select", "waic", "Selection", "CRITERIA"]

CRITERIA = ("bic", "aic", "loo", "waic")


def waic(fit) -> dict:
    """WAIC of a fit with posterior draws.

    Returns
    -------
    dict
        ``elpd_waic``, ``p_waic``, ``se`` (standard error of elpd_waic) and ``pointwise`` (N,).
    """
    if not fit.draws:
        raise ValueError("WAIC needs posterior draws; fit with engine='svi' or 'mcmc'.")
    ll = fit.pointwise_log_likelihood(fit.data)
    ll = ll.reshape(-1, ll.shape[-1])  # (S, N)
    top = ll.max(0)
    lppd = top + np.log(np.exp(ll - top).mean(0))
    p = ll.var(0, ddof=1)
    pointwise = lppd - p
    return {"elpd_waic": float(pointwise.sum()), "p_waic": float(p.sum()),
            "se": float(math.sqrt(len(pointwise) * pointwise.var())), "pointwise": pointwise}


def _named(fits) -> dict:
    if isinstance(fits, dict):
        return dict(fits)
    return {f"model_{i}": f for i, f in enumerate(fits)}


def compare_models(fits, *, criterion: str = "loo"):
    """Rank fits (different K, covariance families or programs) by expected predictive accuracy.

    Parameters
    ----------
    fits : dict of str to Fit, or list of Fit
        Fits with posterior draws (engine "svi" or "mcmc") of the *same* data.
    criterion : {"loo", "waic"}
        PSIS-LOO through ``arviz_stats.compare`` (with stacking weights and Pareto-k
        diagnostics) or WAIC.

    Returns
    -------
    pandas.DataFrame
        One row per fit, best first: ``elpd`` (higher is better), its ``se``, ``p`` (effective
        number of parameters), ``elpd_diff`` (how far below the best, >= 0) and its standard
        error ``dse``; for "loo" also the
        ArviZ ``weight`` and ``warning`` columns.
    """
    import pandas as pd

    fits = _named(fits)
    if criterion not in ("loo", "waic"):
        raise ValueError(f"criterion must be 'loo' or 'waic'; got {criterion!r}.")
    for name, f in fits.items():
        if not f.draws:
            raise ValueError(f"fit {name!r} (engine={f.engine!r}) has no posterior draws; "
                             "compare fits from engine='svi' or engine='mcmc'.")
    n = {name: len(f.data) for name, f in fits.items()}
    if len(set(n.values())) > 1:
        raise ValueError(f"the fits must be of the same data; got numbers of rows {n}.")
    if criterion == "loo":
        import arviz_stats

        trees = {name: f.to_arviz() for name, f in fits.items()}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Pareto.*")
            table = arviz_stats.compare(trees)
        return table.rename(columns={"elpd_loo": "elpd", "p_loo": "p"}) \
            if "elpd_loo" in table.columns else table
    rows = {name: waic(f) for name, f in fits.items()}
    best = max(rows, key=lambda k: rows[k]["elpd_waic"])
    out = []
    for name, r in rows.items():
        diff = rows[best]["pointwise"] - r["pointwise"]  # >= 0 in total, as ArviZ reports it
        out.append({"model": name, "elpd": r["elpd_waic"], "se": r["se"], "p": r["p_waic"],
                    "elpd_diff": float(diff.sum()),
                    "dse": float(math.sqrt(len(diff) * diff.var()))})
    return pd.DataFrame(out).set_index("model").sort_values("elpd", ascending=False)


@dataclass(frozen=True)
class Selection:
    """Result of :func:`select`.

    Attributes
    ----------
    criterion : str
    table : pandas.DataFrame
        One row per number of components: the criterion (``bic``/``aic``: lower is better;
        ``elpd_loo``/``elpd_waic``: higher is better) and its standard error where defined.
    best : int
        The selected number of components.
    fits : dict of int to Fit
    """

    criterion: str
    table: object
    best: int
    fits: dict = field(repr=False)


def select(x, n_components=range(1, 9), *, criterion: str = "bic", covariance="full",
           prior="default", engine: str | None = None, seed: int = 0, **options) -> Selection:
    """Choose the number of components of a GaussianMixture.

    Parameters
    ----------
    x : array-like (N, D)
    n_components : iterable of int
        Candidate K values.
    criterion : {"bic", "aic", "loo", "waic"}
        BIC/AIC from MAP fits (lower is better), or PSIS-LOO / WAIC from posterior draws
        (higher elpd is better).
    covariance, prior
        Passed to :class:`probmix.GaussianMixture`.
    engine : str, optional
        Default "map" for bic/aic and "mcmc" (``method="gibbs"``) for loo/waic.
    seed : int or None
    **options
        Options of the engine's method (e.g. ``num_samples``, ``num_chains``, ``tol``), checked
        against the engine registry (:mod:`probmix.infer.registry`) before the first fit.

    Returns
    -------
    Selection
    """
    import pandas as pd

    from probmix.io.data import as_data
    from probmix.infer.dispatch import fit as run
    from probmix.infer.registry import resolve
    from probmix.model.gaussian_mixture import GaussianMixture

    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}.")
    ks = [int(k) for k in n_components]
    if not ks or min(ks) < 1:
        raise ValueError(f"n_components must be positive integers; got {list(n_components)!r}.")
    x = as_data(x, min_samples=max(ks))
    if engine is None:
        engine = "map" if criterion in ("bic", "aic") else "mcmc"
        if engine == "mcmc" and "kernel" not in options:
            options.setdefault("method", "gibbs")
    entry, options = resolve(GaussianMixture(ks[0], covariance=covariance, prior=prior), engine,
                             options, stacklevel=2)
    options["method"] = entry.method
    if entry.options.get("progress"):
        options.setdefault("progress", False)  # one bar per K would scroll the table away
    fits, rows = {}, []
    for k in ks:
        fits[k] = run(GaussianMixture(k, covariance=covariance, prior=prior), x, engine=engine,
                      seed=seed, **options)
        if criterion in ("bic", "aic"):
            rows.append({"n_components": k, criterion: getattr(fits[k], criterion)(x)})
        elif criterion == "waic":
            w = waic(fits[k])
            rows.append({"n_components": k, "elpd_waic": w["elpd_waic"], "se": w["se"]})
        else:
            import arviz_stats

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*Pareto.*")
                loo = arviz_stats.loo(fits[k].to_arviz())
            rows.append({"n_components": k, "elpd_loo": float(loo.elpd), "se": float(loo.se),
                         "max_pareto_k": float(np.max(loo.pareto_k))})
    table = pd.DataFrame(rows).set_index("n_components")
    column = table.columns[0]
    best = int(table[column].idxmin() if criterion in ("bic", "aic") else table[column].idxmax())
    return Selection(criterion=criterion, table=table, best=best, fits=fits)
