"""Comparison of fits with posterior draws by expected predictive accuracy: PSIS-LOO and WAIC.

PSIS-LOO comes from ArviZ (``arviz_stats.loo`` / ``arviz_stats.compare``) on each
fit's pointwise log-likelihood (z summed out). arviz-stats 0.8 has no WAIC, so
it is computed here from the same matrix (Watanabe 2010; Vehtari, Gelman &
Gabry 2017):

    lppd   = Σ_n log( (1/S) Σ_s p(x_n | θ_s) )
    p_waic = Σ_n Var_s[ log p(x_n | θ_s) ]
    elpd_waic = lppd - p_waic

Reported so that *higher elpd is better*. :func:`probmix.select` ranks (covariance, K) by
these or by BIC/AIC/ICL (:mod:`probmix.results.selection`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["compare_models", "waic"]


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
