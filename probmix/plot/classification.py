"""Figures of the classification of a fitted Gaussian mixture, for data of any dimension.

:func:`pairs` is mclust's ``plot(fit, what = "classification")``: every pair of columns (or,
for many columns, of the leading discriminant directions) with the points coloured by their
most probable component and the components' 1σ and 2σ ellipses. :func:`classification_uncertainty`
ranks the points by 1 − max_k p(k | x), mclust's uncertainty. Ellipses carry the gids
``"sigma1"``/``"sigma2"`` as in :mod:`probmix.plot.mixture`.
"""

from __future__ import annotations

import numpy as np

from probmix.plot._common import (LEGEND_OUTSIDE, _as_points, _check_gmm, _ellipse, _new_axes,
                                  _palette)
from probmix.plot.projection import Projection, feature_labels

__all__ = ["pairs", "classification_uncertainty"]


def _projection(fit, x, names, max_features: int):
    """The columns for D <= max_features, else the first four discriminant directions."""
    d = x.shape[1]
    if d <= max_features:
        return Projection.columns(d, names), "columns"
    return Projection.discriminant(fit, x, names, m=min(4, d)), "discriminant"


def pairs(fit, x, *, labels=None, max_features: int = 8, figsize=None):
    """Scatter matrix of the data by component, with the components' σ-ellipses per panel.

    Parameters
    ----------
    fit : Fit
        A fit of a :class:`probmix.GaussianMixture` (any engine).
    x : array-like (N, D)
        A DataFrame's column names label the panels (else ``fit.feature_names``).
    labels : array-like of int (N,), optional
        Colours of the points; default ``fit.predict(x)`` (the MAP assignment).
    max_features : int
        Up to this many columns every pair of columns is shown; above it, every pair of the
        first four discriminant directions (:meth:`Projection.discriminant`, mclust's
        MclustDR), each axis labelled with its largest loadings by column name.
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
        An m × m grid (m = D, or 4 directions): off the diagonal, axis j against axis i with
        the 1σ (solid) and 2σ (dashed) ellipses of every component's marginal; on the
        diagonal, each component's histogram of that axis. D == 1: one histogram panel.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    _check_gmm(fit)
    names = feature_labels(fit, x, fit.n_features)
    x = _as_points(x, fit.n_features)
    labels = fit.predict(x) if labels is None else np.asarray(labels).astype(int)
    k = max(fit.n_components, int(labels.max()) + 1)
    colors = [_palette(j) for j in range(k)]
    proj, kind = _projection(fit, x, names, max_features)
    xy = proj.points(x)                                           # (N, m)
    mu = proj.points(np.asarray(fit.means))                       # (K, m)
    cov = proj.covariances(fit.covariances)                       # (K, m, m)
    m = xy.shape[1]
    short = proj.labels if kind == "columns" else [f"DR{i + 1}" for i in range(m)]
    lo, hi = xy.min(0), xy.max(0)                                 # (m,) one range per axis
    pad = 0.08 * np.where(hi > lo, hi - lo, 1.0)
    lims = np.stack([lo - pad, hi + pad], 1)                      # (m, 2)
    size = figsize or (max(4.0, 1.9 * m) + 2.2, max(3.5, 1.9 * m) + (0.6 if kind != "columns"
                                                                      else 0.0))
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(m, m, squeeze=False)
    point_colors = np.asarray([colors[j] for j in labels])
    for i in range(m):
        for j in range(m):
            ax = axes[i, j]
            if i == j:
                values = [xy[labels == c, i] for c in range(k)]
                ax.hist(values, bins=20, range=tuple(lims[i]), stacked=True, color=colors,
                        alpha=0.8)
                ax.set_yticks([])
            else:
                ax.scatter(xy[:, j], xy[:, i], c=point_colors, s=4, alpha=0.6, linewidths=0)
                for c in range(fit.n_components):
                    sub = cov[c][np.ix_([j, i], [j, i])]
                    for s, style in ((1, "-"), (2, "--")):
                        _ellipse(ax, mu[c, [j, i]], sub, s, gid=f"sigma{s}", edgecolor=colors[c],
                                 linestyle=style, linewidth=1.0)
                ax.set_ylim(*lims[i])
            ax.set_xlim(*lims[j])
            if i == m - 1:
                ax.set_xlabel(short[j], fontsize="small" if m > 3 else None)
            else:
                ax.set_xticklabels([])
            if j == 0:
                ax.set_ylabel(short[i], fontsize="small" if m > 3 else None)
            elif i != j:
                ax.set_yticklabels([])
            ax.tick_params(labelsize="x-small")
    handles = [Line2D([], [], color=colors[c], marker="o", linestyle="none",
                      label=f"component {c} (weight {float(fit.weights[c]):.2f})")
               for c in range(fit.n_components)]
    handles += [Line2D([], [], color="0.3", linestyle=st, label=f"{s}σ ellipse")
                for s, st in ((1, "-"), (2, "--"))]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    what = ("every pair of columns" if kind == "columns" else
            f"the first {m} discriminant directions DR ({fit.n_features} columns > "
            f"{max_features})")
    fig.suptitle(f"{fit.n_components} components ({fit.engine} fit), points by most probable "
                 f"component\n{what}", fontsize="medium")
    if kind != "columns":  # what each direction is made of, by column name
        fig.supxlabel("\n".join(proj.labels), fontsize="x-small", ha="left", x=0.01)
    return fig


def classification_uncertainty(fit, x, *, ax=None, title=None):
    """Each point's classification uncertainty 1 − max_k p(k | x), largest first.

    Parameters
    ----------
    fit : Fit
        Any fit with :meth:`~probmix.results.result.Fit.predict_proba` (a Gaussian mixture
        or a custom program).
    x : array-like (N, D)
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        The sorted uncertainties, points coloured by their most probable component, with the
        largest possible value 1 − 1/K marked.
    """
    from matplotlib.lines import Line2D

    proba = np.asarray(fit.predict_proba(x))                      # (N, K)
    k = proba.shape[1]
    unc = 1.0 - proba.max(1)                                      # (N,)
    order = np.argsort(-unc, kind="stable")
    labels = proba.argmax(1)[order]
    fig, ax = _new_axes(ax, figsize=(7.5, 4.0))
    rank = np.arange(1, len(unc) + 1)
    ax.plot(rank, unc[order], color="0.6", linewidth=0.8, zorder=1)
    ax.scatter(rank, unc[order], c=[_palette(j) for j in labels], s=8, zorder=2)
    top = 1.0 - 1.0 / k
    ax.axhline(top, color="0.3", linestyle=":", linewidth=1)
    ax.set_xlabel("points, most uncertain first")
    ax.set_ylabel("uncertainty 1 − max_k p(k | x)")
    ax.set_ylim(-0.02 * max(top, 0.05), max(top, 0.05) * 1.05)
    handles = [Line2D([], [], color=_palette(j), marker="o", linestyle="none",
                      label=f"component {j}") for j in range(k)]
    handles.append(Line2D([], [], color="0.3", linestyle=":", label=f"most possible, 1 − 1/{k}"))
    ax.legend(handles=handles, fontsize="small", **LEGEND_OUTSIDE)
    above = int(np.sum(unc > 0.1))
    ax.set_title(title if title is not None else
                 f"Classification uncertainty ({fit.engine} fit): {above} of {len(unc)} points "
                 f"above 0.1, mean {unc.mean():.3f}")
    return fig
