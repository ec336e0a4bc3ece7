"""Figures of a fitted Gaussian mixture: clusters with σ-ellipses, posterior spaghetti, panels.

Ellipses are tagged with ``gid`` so that callers (and tests) can find them:
``"sigma1"``/``"sigma2"`` for the 1σ/2σ ellipses of the point estimate and ``"draw"``
for the 1σ ellipses of posterior draws.
"""

from __future__ import annotations

import numpy as np

from probmix.plot._common import (LEGEND_OUTSIDE, _as_points, _check_gmm, _ellipse, _new_axes,
                                  _palette, _require_draws)
from probmix.plot.projection import Projection, feature_labels

__all__ = ["clusters", "uncertainty", "compare", "guessed_vs_true"]


def _full_draws(fit):
    """Posterior draws flattened over (chain, draw): means (S, K, D), covariances (S, K, D, D)."""
    k, d = fit.n_components, fit.n_features
    means = np.asarray(fit.draws["means"]).reshape(-1, k, d)
    return means, fit.covariance_draws.reshape(-1, k, d, d)


def _draw_clusters(ax, fit, x, proj, *, point_colors, component_colors, sigmas=(1, 2),
                   legend=True):
    """Scatter, means and σ-ellipses of every component on ``ax`` (2-D view)."""
    from matplotlib.lines import Line2D

    xy = proj.points(x)                                           # (N, 2)
    ax.scatter(xy[:, 0], xy[:, 1], c=np.asarray(point_colors), s=12, alpha=0.7,
               linewidths=0, zorder=1)
    means = proj.points(np.asarray(fit.means))                    # (K, 2)
    cov = proj.covariances(fit.covariances)                       # (K, 2, 2)
    weights = np.asarray(fit.weights)
    styles = {1: "-", 2: "--", 3: ":"}
    handles = []
    for k in range(fit.n_components):
        color = component_colors[k]
        for s in sigmas:
            _ellipse(ax, means[k], cov[k], s, gid=f"sigma{s}", edgecolor=color,
                     linestyle=styles.get(s, "-."), linewidth=1.8, zorder=3)
        ax.plot(*means[k], marker="X", markersize=9, color=color, markeredgecolor="black",
                linestyle="none", zorder=4)
        handles.append(Line2D([], [], color=color, marker="o", linestyle="none",
                              label=f"component {k} (weight {weights[k]:.2f})"))
    handles += [Line2D([], [], color="0.3", linestyle=styles.get(s, "-."), label=f"{s}σ ellipse")
                for s in sigmas]
    handles.append(Line2D([], [], color="0.3", marker="X", linestyle="none", label="mean"))
    proj.label(ax)
    ax.autoscale_view()
    if legend:
        ax.legend(handles=handles, fontsize="small", **LEGEND_OUTSIDE)


def _draw_spaghetti(ax, fit, proj, *, n_draws: int, seed, component_colors, alpha=0.25):
    """1σ ellipses and means of ``n_draws`` random posterior draws (gid "draw")."""
    means, cov = _full_draws(fit)                                 # (S, K, D), (S, K, D, D)
    rng = np.random.default_rng(seed)
    idx = rng.choice(means.shape[0], size=min(int(n_draws), means.shape[0]), replace=False)
    m2 = proj.points(means[idx])                                  # (n, K, 2)
    c2 = proj.covariances(cov[idx])                               # (n, K, 2, 2)
    for i in range(len(idx)):
        for k in range(fit.n_components):
            _ellipse(ax, m2[i, k], c2[i, k], 1.0, gid="draw", edgecolor=component_colors[k],
                     linewidth=0.8, alpha=alpha, zorder=2)
    for k in range(fit.n_components):
        ax.scatter(m2[:, k, 0], m2[:, k, 1], color=component_colors[k], s=6, alpha=alpha + 0.2,
                   zorder=2)
    return len(idx)


def _density_1d(ax, fit, x, labels, component_colors, name="x"):
    """Histogram of one feature, mixture density and weighted component densities."""
    values = x[:, 0]
    ax.hist(values, bins="auto", density=True, color="0.8", edgecolor="white", label="data")
    grid = np.linspace(values.min(), values.max(), 400)
    pad = 0.1 * (grid[-1] - grid[0] + 1e-12)
    grid = np.linspace(grid[0] - pad, grid[-1] + pad, 400)
    w = np.asarray(fit.weights)
    mu = np.asarray(fit.means)[:, 0]
    var = fit.covariances[:, 0, 0]
    comp = w[:, None] * np.exp(-0.5 * (grid - mu[:, None]) ** 2 / var[:, None]) / np.sqrt(
        2 * np.pi * var[:, None])                                 # (K, G)
    for k in range(fit.n_components):
        ax.plot(grid, comp[k], "--", color=component_colors[k],
                label=f"component {k} (weight {w[k]:.2f})")
    ax.plot(grid, comp.sum(0), color="black", linewidth=2, label="mixture density")
    ax.scatter(values, np.zeros_like(values), marker="|", s=60,
               c=[component_colors[int(lab) % len(component_colors)] for lab in labels],
               label="points (by label)")
    ax.set_xlabel(name)
    ax.set_ylabel("density")
    ax.legend(fontsize="small", **LEGEND_OUTSIDE)


def clusters(fit, x, *, labels=None, ax=None, title=None):
    """Data coloured by cluster with the 1σ and 2σ ellipses of every component.

    Parameters
    ----------
    fit : Fit
        A fit of a :class:`probmix.GaussianMixture` (any engine); uses ``fit.means`` (K, D),
        ``fit.covariances`` (K, D, D) and ``fit.weights`` (K,) (posterior means for SVI/MCMC).
    x : array-like (N, D)
        A DataFrame's column names label the axes (else ``fit.feature_names``).
    labels : array-like of int (N,), optional
        Colours of the points; default ``fit.predict(x)``.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    D == 2 is drawn as is, axes named by the columns. For D > 2 the data, means and
    covariances are projected on the first two principal axes P (2, D) of ``x`` in the units
    the model was fitted in (standardised columns for ``standardize=True``; means:
    P(μ - x̄), covariances: P Σ Pᵀ), and each axis label says its share of the variance and
    its largest loadings by column name: "PC1 (36% var): +0.49 flavanoids, …". D == 1 gives
    a histogram with the mixture density. :func:`probmix.plot.pairs` shows every pair of
    columns.
    """
    _check_gmm(fit)
    names = feature_labels(fit, x, fit.n_features)
    x = _as_points(x, fit.n_features)
    labels = fit.predict(x) if labels is None else np.asarray(labels).astype(int)
    fig, ax = _new_axes(ax, figsize=(7.5, 5.0))
    colors = [_palette(k) for k in range(max(fit.n_components, int(labels.max()) + 1))]
    if x.shape[1] == 1:
        _density_1d(ax, fit, x, labels, colors, names[0])
    else:
        _draw_clusters(ax, fit, x, Projection.plane(x, fit, names),
                       point_colors=[colors[i] for i in labels], component_colors=colors)
    ax.set_title(title if title is not None else
                 f"{fit.n_components} components ({fit.engine} fit), points by predicted cluster")
    return fig


def uncertainty(fit, x, *, n_draws: int = 50, seed=0, ax=None, title=None):
    """Posterior "spaghetti": the 1σ ellipses and means of random posterior draws.

    Parameters
    ----------
    fit : Fit
        An SVI or MCMC fit of a GaussianMixture; ``fit.draws["means"]`` (C, S, K, D) and
        ``fit.draws["covariances"]`` (C, S, K, D, D) (or the family's native shape).
    x : array-like (N, D), D >= 2
        Drawn underneath, coloured by ``fit.predict(x)`` (projected by PCA when D > 2).
    n_draws : int
        Number of draws, picked without replacement by ``numpy.random.default_rng(seed)``
        (all of them if there are fewer); gives ``n_draws * K`` ellipses.
    seed : int or numpy Generator
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the fit has no draws (engine="map").
    """
    _check_gmm(fit)
    _require_draws(fit, "uncertainty()")
    names = feature_labels(fit, x, fit.n_features)
    x = _as_points(x, fit.n_features)
    if x.shape[1] < 2:
        raise ValueError("uncertainty() draws ellipses and needs D >= 2 features; use clusters().")
    fig, ax = _new_axes(ax, figsize=(7.5, 5.0))
    labels = fit.predict(x)
    colors = [_palette(k) for k in range(fit.n_components)]
    proj = Projection.plane(x, fit, names)
    xy = proj.points(x)
    ax.scatter(xy[:, 0], xy[:, 1], c=[colors[i] for i in labels], s=10, alpha=0.35, linewidths=0,
               zorder=1)
    shown = _draw_spaghetti(ax, fit, proj, n_draws=n_draws, seed=seed, component_colors=colors)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[k], label=f"component {k}")
               for k in range(fit.n_components)]
    ax.legend(handles=handles, title=f"1σ ellipse of {shown} draws", fontsize="small",
              **LEGEND_OUTSIDE)
    proj.label(ax)
    ax.autoscale_view()
    ax.set_title(title if title is not None else
                 f"Posterior uncertainty ({fit.engine}): {shown} of {fit.n_draws} draws")
    return fig


def compare(fits: dict, x, *, n_draws: int = 30, seed=0, draws: bool = True, figsize=None):
    """One panel per fit, side by side: clusters with 1σ/2σ ellipses (and spaghetti).

    Parameters
    ----------
    fits : dict of str to Fit
        Panel title -> fit of a GaussianMixture (all on the same data).
    x : array-like (N, D), D >= 2
    n_draws : int
        Posterior draws shown (as in :func:`uncertainty`) for fits that have draws.
    seed : int
    draws : bool
        Set False to show only the point estimates.
    figsize : (float, float), optional
        Default 5 inches per panel.

    Returns
    -------
    matplotlib.figure.Figure
        Panels share their x and y axes.
    """
    from matplotlib.figure import Figure

    if not isinstance(fits, dict) or not fits:
        raise TypeError("fits must be a non-empty dict of name -> Fit.")
    first = next(iter(fits.values()))
    names = feature_labels(first, x, _as_points(x).shape[1])
    x = _as_points(x)
    if x.shape[1] < 2:
        raise ValueError("compare() draws ellipses and needs D >= 2 features.")
    proj = Projection.plane(x, first, names)
    n = len(fits)
    fig = Figure(figsize=figsize or (5.0 * n + 2.0, 4.8), layout="constrained")
    axes = fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)[0]
    for panel, (ax, (name, fit)) in enumerate(zip(axes, fits.items())):
        _check_gmm(fit)
        _as_points(x, fit.n_features)
        labels = fit.predict(x)
        colors = [_palette(k) for k in range(fit.n_components)]
        _draw_clusters(ax, fit, x, proj, point_colors=[colors[i] for i in labels],
                       component_colors=colors, legend=panel == n - 1)
        extra = ""
        if draws and fit.draws:
            shown = _draw_spaghetti(ax, fit, proj, n_draws=n_draws, seed=seed,
                                    component_colors=colors, alpha=0.15)
            extra = f", {shown} draws"
        ax.set_title(f"{name} ({fit.engine}{extra})")
    fig.suptitle("Fitted components: 1σ/2σ ellipses of the point estimate"
                 + (", thin: 1σ of posterior draws" if draws else ""))
    return fig


def _color_mapping(pred: np.ndarray, truth: np.ndarray, k: int):
    """Index of the true label each predicted component overlaps most, and the true labels."""
    classes, truth_idx = np.unique(truth, return_inverse=True)
    confusion = np.zeros((k, len(classes)), dtype=int)            # (K, L)
    np.add.at(confusion, (pred, truth_idx), 1)
    mapping = confusion.argmax(1)                                 # (K,)
    # components that own no point keep a colour of their own
    empty = confusion.sum(1) == 0
    mapping[empty] = len(classes) + np.arange(int(empty.sum()))
    return mapping, classes, truth_idx


def guessed_vs_true(fit, x, true_labels, *, figsize=(11.0, 4.8)):
    """Two panels: the fit's guessed source of every point and the true association.

    Each predicted component takes the colour of the true label it overlaps most (the
    argmax of its row of the confusion matrix), so agreement shows as matching colours.

    Parameters
    ----------
    fit : Fit
        Fit of a GaussianMixture.
    x : array-like (N, D)
    true_labels : array-like (N,)
        Known source of each point (any hashable labels).
    figsize : (float, float)

    Returns
    -------
    matplotlib.figure.Figure
        Left: "guessed source" (``fit.predict``, with ellipses); right: "true association".
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    _check_gmm(fit)
    names = feature_labels(fit, x, fit.n_features)
    x = _as_points(x, fit.n_features)
    truth = np.asarray(true_labels)
    if truth.shape != (x.shape[0],):
        raise ValueError(f"true_labels must have shape ({x.shape[0]},); got {truth.shape}.")
    pred = fit.predict(x)
    mapping, classes, truth_idx = _color_mapping(pred, truth, fit.n_components)
    comp_colors = [_palette(j) for j in mapping]
    fig = Figure(figsize=figsize, layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True, sharey=True)
    if x.shape[1] == 1:
        _density_1d(left, fit, x, pred, comp_colors, names[0])
        right.scatter(x[:, 0], np.zeros(len(x)), c=[_palette(j) for j in truth_idx], marker="|",
                      s=60)
        right.set_xlabel(names[0])
    else:
        proj = Projection.plane(x, fit, names)
        _draw_clusters(left, fit, x, proj, point_colors=[comp_colors[i] for i in pred],
                       component_colors=comp_colors)
        xy = proj.points(x)
        right.scatter(xy[:, 0], xy[:, 1], c=[_palette(j) for j in truth_idx], s=12, alpha=0.7,
                      linewidths=0)
        proj.label(right)
    right.legend(handles=[Line2D([], [], color=_palette(j), marker="o", linestyle="none",
                                 label=f"true {c}") for j, c in enumerate(classes)],
                 fontsize="small", **LEGEND_OUTSIDE)
    agree = float(np.mean(mapping[pred] == truth_idx))
    left.set_title(f"guessed source ({fit.engine} fit)")
    right.set_title("true association")
    fig.suptitle(f"Colours matched by overlap: {100 * agree:.1f}% of points agree")
    return fig
