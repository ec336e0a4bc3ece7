"""A compact printed table of a fitted Gaussian mixture, readable for any number of columns.

Weights and means (± posterior sd where the fit has draws), then a summary of each
covariance: the standard deviation of every column and the strongest correlations by
column name. Wide data show their first columns and say where the rest is (the full
parameters go to JSON: :func:`probmix.results.export.parameter_summary`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["component_table"]


def _cell(value: float, sd: float | None) -> str:
    return f"{value:.4g}" if sd is None else f"{value:.4g}±{sd:.2g}"


def _correlations(cov: np.ndarray, names: list[str], top: int) -> str:
    """The ``top`` largest |r| among column pairs: "a~c +0.71, a~b +0.02"."""
    d = cov.shape[0]
    if d < 2:
        return ""
    sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    r = cov / np.outer(sd, sd)                                    # (D, D)
    i, j = np.triu_indices(d, 1)
    if np.all(r[i, j] == 0):
        return "none (a diagonal covariance)"
    order = np.argsort(-np.abs(r[i, j]), kind="stable")[:top]
    return ", ".join(f"{names[i[o]]}~{names[j[o]]} {r[i[o], j[o]]:+.2f}" for o in order)


def component_table(fit, names: list[str] | None = None, *, max_columns: int = 8,
                    top_correlations: int = 3) -> str:
    """Weights, means and a covariance summary of a Gaussian-mixture fit, as text.

    Parameters
    ----------
    fit : Fit
        A fit of a :class:`probmix.GaussianMixture`.
    names : list of str, optional
        Column names; default ``fit.feature_names``, else "x1", "x2", ....
    max_columns : int
        Columns shown; wider data say how many more there are and where they are.
    top_correlations : int
        Correlations listed per component (largest |r| first).

    Returns
    -------
    str
        One block of weights and means (K rows), one of covariances: each column's sd and the
        strongest correlations. With draws, each estimate is the posterior mean ± sd.
    """
    d, k = fit.n_features, fit.n_components
    names = list(names or fit.feature_names or [f"x{j + 1}" for j in range(d)])
    shown = list(range(min(d, max_columns)))
    draws = fit.draws if "weights" in fit.draws and "means" in fit.draws else None
    w_sd = np.asarray(draws["weights"]).reshape(-1, k).std(0) if draws else np.full(k, None)
    m_sd = np.asarray(draws["means"]).reshape(-1, k, d).std(0) if draws else \
        np.full((k, d), None)
    extra = 5 if draws else 0                                     # room for "±sd"
    width = max([11] + [min(len(names[j]), 14) + 2 for j in shown]) + extra
    first = 10 + extra
    head = "".join(f"{names[j][:14]:>{width}}" for j in shown)
    lines = ["weights and means" + (" (posterior mean±sd)" if draws else "") + ":",
             f"{'k':>3} {'weight':>{first}}" + head]
    for c in range(k):
        cells = [_cell(float(fit.means[c, j]), m_sd[c, j]) for j in shown]
        lines.append(f"{c:>3} {_cell(float(fit.weights[c]), w_sd[c]):>{first}}"
                     + "".join(f"{cell:>{width}}" for cell in cells))
    cov = fit.covariances                                         # (K, D, D)
    lines.append("covariances: sd of each column"
                 + (", strongest correlations:" if d > 1 else ":"))
    lines.append(f"{'k':>3} {'':>{first}}" + head + ("   correlations" if d > 1 else ""))
    for c in range(k):
        sd = np.sqrt(np.clip(np.diag(cov[c]), 0, None))          # (D,)
        row = f"{c:>3} {'':>{first}}" + "".join(f"{sd[j]:>{width}.4g}" for j in shown)
        corr = _correlations(cov[c], names, top_correlations)
        lines.append(row + (f"   {corr}" if corr else ""))
    if d > len(shown):
        rest = names[len(shown):]
        lines.append(f"... and {len(rest)} more columns ({', '.join(rest[:4])}"
                     f"{', ...' if len(rest) > 4 else ''}): every value is in parameters.json "
                     "(--out)")
    return "\n".join(lines)
