"""Figures of fitted mixtures: clusters with covariance ellipses, posterior spaghetti,
model comparison, loss curves, selection criteria, MCMC traces and mean-shift paths.

Every function builds its own :class:`matplotlib.figure.Figure` (never ``pyplot.show``,
no change to rcParams or to the pyplot figure registry) and returns it, so the module
works under the Agg backend, in notebooks and in scripts alike. Functions that draw on
one axes accept ``ax=`` and then draw there and return that axes' figure.

Ellipses are tagged with ``gid`` so that callers (and tests) can find them:
``"sigma1"``/``"sigma2"`` for the 1σ/2σ ellipses of the point estimate and ``"draw"``
for the 1σ ellipses of posterior draws.
"""

from __future__ import annotations

import pathlib

import numpy as np

__all__ = [
    "clusters",
    "compare",
    "criterion",
    "guessed_vs_true",
    "loss_curve",
    "meanshift_animation",
    "meanshift_paths",
    "rank",
    "trace",
    "uncertainty",
]


# ----------------------------------------------------------------------------- helpers


def _palette(i):
    """Colour of cluster ``i`` (tab10, cycling)."""
    import matplotlib

    return matplotlib.colormaps["tab10"](int(i) % 10)


def _new_axes(ax, figsize=(6.0, 5.0)):
    """``(figure, axes)``: the given axes and its figure, or a new one-panel figure."""
    if ax is not None:
        return ax.get_figure(root=True), ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _as_points(x, n_features: int | None = None) -> np.ndarray:
    """Data as a float array (N, D); a 1-D input is one feature."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"x must be an array of shape (N, D); got shape {x.shape}.")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"x has {x.shape[1]} features but the fit was made on {n_features}.")
    return x


def _check_gmm(fit) -> None:
    if not fit.mixture.gaussian:
        raise TypeError("probmix.plot draws fits of a probmix.GaussianMixture; this fit is of a "
                        "custom Pyro program (plot its fit.params yourself).")


class _Projection:
    """The plane the figures show: the data's own axes for D == 2, else the first two
    principal axes of the data (PCA by SVD of the centred data)."""

    def __init__(self, x: np.ndarray):
        d = x.shape[1]
        if d == 2:
            self.center = np.zeros(2)
            self.axes = np.eye(2)                                 # (2, D)
            self.labels = ("feature 1", "feature 2")
        else:
            self.center = x.mean(0)                               # (D,)
            _, s, vt = np.linalg.svd(x - self.center, full_matrices=False)
            self.axes = vt[:2]                                    # (2, D)
            share = s**2 / np.sum(s**2)
            self.labels = tuple(f"PC{i + 1} ({100 * share[i]:.0f}% var)" for i in range(2))

    def points(self, x: np.ndarray) -> np.ndarray:
        """(..., D) -> (..., 2)."""
        return (x - self.center) @ self.axes.T

    def covariances(self, cov: np.ndarray) -> np.ndarray:
        """(..., D, D) -> P Σ Pᵀ (..., 2, 2)."""
        return self.axes @ cov @ self.axes.T

    def label(self, ax) -> None:
        ax.set_xlabel(self.labels[0])
        ax.set_ylabel(self.labels[1])


def _ellipse(ax, mean, cov, n_sigma: float, *, gid: str, **kwargs):
    """Add the n_sigma contour of N(mean, cov) in 2-D; returns the patch."""
    from matplotlib.patches import Ellipse

    evals, evecs = np.linalg.eigh(cov)                            # ascending
    evals = np.clip(evals, 0.0, None)
    angle = np.degrees(np.arctan2(evecs[1, -1], evecs[0, -1]))
    width, height = 2.0 * n_sigma * np.sqrt(evals[::-1])
    patch = Ellipse(tuple(mean), width, height, angle=angle, fill=False, **kwargs)
    patch.set_gid(gid)
    ax.add_patch(patch)
    return patch


def _full_draws(fit):
    """Posterior draws flattened over (chain, draw): means (S, K, D), covariances (S, K, D, D)."""
    k, d = fit.n_components, fit.n_features
    means = np.asarray(fit.draws["means"]).reshape(-1, k, d)
    return means, fit.covariance_draws.reshape(-1, k, d, d)


def _require_draws(fit, what: str) -> None:
    if not fit.draws:
        raise ValueError(f"{what} needs posterior draws, but this fit (engine={fit.engine!r}) has "
                         "none: refit with engine='svi' (e.g. method='cavi') or engine='mcmc'.")


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
        ax.legend(handles=handles, fontsize="small", loc="best", framealpha=0.8)


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


def _density_1d(ax, fit, x, labels, component_colors):
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
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend(fontsize="small")


# ----------------------------------------------------------------------------- public


def clusters(fit, x, *, labels=None, ax=None, title=None):
    """Data coloured by cluster with the 1σ and 2σ ellipses of every component.

    Parameters
    ----------
    fit : Fit
        A fit of a :class:`probmix.GaussianMixture` (any engine); uses ``fit.means`` (K, D),
        ``fit.covariances`` (K, D, D) and ``fit.weights`` (K,) (posterior means for SVI/MCMC).
    x : array-like (N, D)
    labels : array-like of int (N,), optional
        Colours of the points; default ``fit.predict(x)``.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    D == 2 is drawn as is. For D > 2 the data, means and covariances are projected on the
    first two principal axes P (2, D) of ``x`` (means: P(μ - x̄), covariances: P Σ Pᵀ) and the
    axes are labelled "PC1 (xx% var)". D == 1 gives a histogram with the mixture density.
    """
    _check_gmm(fit)
    x = _as_points(x, fit.n_features)
    labels = fit.predict(x) if labels is None else np.asarray(labels).astype(int)
    fig, ax = _new_axes(ax)
    colors = [_palette(k) for k in range(max(fit.n_components, int(labels.max()) + 1))]
    if x.shape[1] == 1:
        _density_1d(ax, fit, x, labels, colors)
    else:
        _draw_clusters(ax, fit, x, _Projection(x),
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
    x = _as_points(x, fit.n_features)
    if x.shape[1] < 2:
        raise ValueError("uncertainty() draws ellipses and needs D >= 2 features; use clusters().")
    fig, ax = _new_axes(ax)
    labels = fit.predict(x)
    colors = [_palette(k) for k in range(fit.n_components)]
    proj = _Projection(x)
    xy = proj.points(x)
    ax.scatter(xy[:, 0], xy[:, 1], c=[colors[i] for i in labels], s=10, alpha=0.35, linewidths=0,
               zorder=1)
    shown = _draw_spaghetti(ax, fit, proj, n_draws=n_draws, seed=seed, component_colors=colors)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[k], label=f"component {k}")
               for k in range(fit.n_components)]
    ax.legend(handles=handles, title=f"1σ ellipse of {shown} draws", fontsize="small")
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
    x = _as_points(x)
    if x.shape[1] < 2:
        raise ValueError("compare() draws ellipses and needs D >= 2 features.")
    proj = _Projection(x)
    n = len(fits)
    fig = Figure(figsize=figsize or (5.0 * n, 4.8), layout="constrained")
    axes = fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)[0]
    for ax, (name, fit) in zip(axes, fits.items()):
        _check_gmm(fit)
        _as_points(x, fit.n_features)
        labels = fit.predict(x)
        colors = [_palette(k) for k in range(fit.n_components)]
        _draw_clusters(ax, fit, x, proj, point_colors=[colors[i] for i in labels],
                       component_colors=colors)
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
        _density_1d(left, fit, x, pred, comp_colors)
        right.scatter(x[:, 0], np.zeros(len(x)), c=[_palette(j) for j in truth_idx], marker="|",
                      s=60)
        right.set_xlabel("x")
    else:
        proj = _Projection(x)
        _draw_clusters(left, fit, x, proj, point_colors=[comp_colors[i] for i in pred],
                       component_colors=comp_colors)
        xy = proj.points(x)
        right.scatter(xy[:, 0], xy[:, 1], c=[_palette(j) for j in truth_idx], s=12, alpha=0.7,
                      linewidths=0)
        proj.label(right)
    right.legend(handles=[Line2D([], [], color=_palette(j), marker="o", linestyle="none",
                                 label=f"true {c}") for j, c in enumerate(classes)],
                 fontsize="small")
    agree = float(np.mean(mapping[pred] == truth_idx))
    left.set_title(f"guessed source ({fit.engine} fit)")
    right.set_title("true association")
    fig.suptitle(f"Colours matched by overlap: {100 * agree:.1f}% of points agree")
    return fig


def loss_curve(fit, *, window: int | None = None, ax=None):
    """SVI loss (negative ELBO) per step with its running mean.

    Parameters
    ----------
    fit : Fit
        A fit with ``fit.losses`` (n_steps,) (engine="svi" with stochastic steps).
    window : int, optional
        Running-mean width; default max(1, n_steps // 20).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the fit recorded no losses.
    """
    losses = np.asarray(fit.losses, dtype=float)
    if losses.size == 0:
        raise ValueError(f"this fit (engine={fit.engine!r}) recorded no losses: loss curves exist "
                         "for engine='svi' with stochastic optimisation (not method='cavi').")
    window = max(1, losses.size // 20) if window is None else int(window)
    if window < 1:
        raise ValueError(f"window must be a positive integer; got {window}.")
    fig, ax = _new_axes(ax, figsize=(6.5, 4.0))
    steps = np.arange(1, losses.size + 1)
    ax.plot(steps, losses, color="0.6", linewidth=0.8, label="loss per step")
    if losses.size >= window:
        running = np.convolve(losses, np.ones(window) / window, mode="valid")   # (n - w + 1,)
        ax.plot(steps[window - 1:], running, color="C3", linewidth=2,
                label=f"running mean ({window} steps)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (negative ELBO)")
    ax.set_title(f"SVI loss, {losses.size} steps, last {losses[-1]:.4g}")
    ax.legend()
    return fig


def criterion(selection, *, ax=None):
    """A selection criterion against the number of components, best K marked.

    Parameters
    ----------
    selection : Selection
        From :func:`probmix.select`; ``selection.table`` is indexed by n_components, its first
        column the criterion and an optional ``se`` column its standard error.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = selection.table
    column = table.columns[0]
    ks = np.asarray(table.index, dtype=int)
    values = np.asarray(table[column], dtype=float)
    fig, ax = _new_axes(ax, figsize=(6.0, 4.0))
    se = np.asarray(table["se"], dtype=float) if "se" in table.columns else None
    ax.errorbar(ks, values, yerr=se, marker="o", capsize=3, color="C0",
                label=column + (" ± se" if se is not None else ""))
    best = int(selection.best)
    ax.plot([best], [values[list(ks).index(best)]], marker="*", markersize=18, color="C3",
            linestyle="none", label=f"best K = {best}", zorder=3)
    lower = selection.criterion in ("bic", "aic")
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{column} ({'lower' if lower else 'higher'} is better)")
    ax.set_xticks(ks)
    ax.set_title(f"Model selection by {selection.criterion.upper()}")
    ax.legend()
    return fig


def _arviz_figure(function, fit, var_names, title, **kwargs):
    """Run an arviz_plots function on the fit's draws; the matplotlib Figure it drew."""
    import arviz_plots
    import matplotlib.pyplot as plt

    _require_draws(fit, f"{function}()")
    tree = fit.to_arviz(log_likelihood=False)
    pc = getattr(arviz_plots, function)(tree, var_names=list(var_names), backend="matplotlib",
                                        **kwargs)
    for dims in (["component", "feature", "__variable__"], "chain"):
        try:  # legends for whichever dims the plot maps to colour / line style
            pc.add_legend(dims)
        except (ValueError, KeyError):
            pass
    fig = pc.viz["figure"].item()
    if fig.get_layout_engine() is None:
        fig.subplots_adjust(top=0.80, hspace=0.6)  # room for the title above the panel titles
    fig.suptitle(title)
    plt.close(fig)  # arviz_plots registers it with pyplot; the returned figure stays usable
    return fig


def trace(fit, *, var_names=("means",), **kwargs):
    """Trace and marginal-density plot of posterior draws (``arviz_plots.plot_trace_dist``).

    Parameters
    ----------
    fit : Fit
        SVI or MCMC fit; its draws (chain, draw, ...) go through ``fit.to_arviz``.
    var_names : sequence of str
        Sites to show, e.g. "weights", "means", "covariances".
    **kwargs
        Passed to ``arviz_plots.plot_trace_dist``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    title = f"Trace of {', '.join(var_names)} ({fit.engine}): left density, right draw by draw"
    return _arviz_figure("plot_trace_dist", fit, var_names, title, **kwargs)


def rank(fit, *, var_names=("means",), **kwargs):
    """Rank (fractional ECDF) plot of the chains (``arviz_plots.plot_rank``): chains that mix
    well stay inside the band.

    Parameters
    ----------
    fit : Fit
        SVI or MCMC fit (more than one chain makes the plot meaningful).
    var_names : sequence of str
    **kwargs
        Passed to ``arviz_plots.plot_rank``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    title = f"Rank plot of {', '.join(var_names)} ({fit.engine}): chains should stay in the band"
    return _arviz_figure("plot_rank", fit, var_names, title, **kwargs)


def _meanshift_view(ms, x):
    """Checked data, path (T+1, S, D) and the 2-D projection of both."""
    path = getattr(ms, "path_", None)
    if path is None:
        raise ValueError("the MeanShift has no path: fit probmix.MeanShift(keep_path=True).")
    x = _as_points(x, path.shape[-1])
    if x.shape[1] < 2:
        raise ValueError("mean-shift path plots need D >= 2 features.")
    return x, path, _Projection(x)


def _seed_colors(ms, path):
    """Colour of each seed: the mode its final position is nearest to."""
    centers = np.asarray(ms.cluster_centers_)                     # (K, D)
    final = path[-1]                                              # (S, D)
    nearest = ((final[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
    return [_palette(k) for k in nearest]


def meanshift_paths(ms, x, *, ax=None, title=None):
    """Paths of the mean-shift seeds from their start to the modes.

    Parameters
    ----------
    ms : MeanShift
        Fitted with ``keep_path=True``; ``ms.path_`` is (n_iter + 1, S, D).
    x : array-like (N, D)
        The data it was fitted on (grey; projected by PCA when D > 2).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.lines import Line2D

    x, path, proj = _meanshift_view(ms, x)
    fig, ax = _new_axes(ax)
    xy, p2 = proj.points(x), proj.points(path)                    # (N, 2), (T+1, S, 2)
    colors = _seed_colors(ms, path)
    ax.scatter(xy[:, 0], xy[:, 1], color="0.75", s=10, zorder=1)
    for s in range(p2.shape[1]):
        ax.plot(p2[:, s, 0], p2[:, s, 1], color=colors[s], linewidth=0.8, alpha=0.7, zorder=2)
    ax.scatter(p2[0, :, 0], p2[0, :, 1], c=colors, s=8, zorder=3)
    modes = proj.points(np.asarray(ms.cluster_centers_))
    ax.scatter(modes[:, 0], modes[:, 1], marker="*", s=300, c=[_palette(k) for k in
               range(len(modes))], edgecolors="black", zorder=4)
    ax.legend(handles=[
        Line2D([], [], color="0.75", marker="o", linestyle="none", label="data"),
        Line2D([], [], color="0.3", label=f"seed path ({p2.shape[1]} seeds)"),
        Line2D([], [], color="0.3", marker="o", markersize=4, linestyle="none", label="start"),
        Line2D([], [], color="0.3", marker="*", markersize=12, linestyle="none",
               label=f"mode ({len(modes)})"),
    ], fontsize="small")
    proj.label(ax)
    ax.set_title(title if title is not None else
                 f"Mean shift: {ms.n_iter_} steps, bandwidth {ms.bandwidth_:.3g}")
    return fig


def meanshift_animation(ms, x, path, *, fps: int = 10, max_frames: int = 100):
    """Write a GIF of the mean-shift seeds moving to the modes.

    Parameters
    ----------
    ms : MeanShift
        Fitted with ``keep_path=True``.
    x : array-like (N, D)
    path : str or pathlib.Path
        Output file (GIF, written with the pillow writer).
    fps : int
        Frames per second.
    max_frames : int
        Longer paths are subsampled to at most this many frames (first and last kept).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ImportError
        If pillow is not installed.
    """
    import importlib.util

    if importlib.util.find_spec("PIL") is None:
        raise ImportError("meanshift_animation() writes GIFs with pillow: pip install pillow")
    from matplotlib.animation import FuncAnimation
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, steps, proj = _meanshift_view(ms, x)
    if int(max_frames) < 2:
        raise ValueError(f"max_frames must be at least 2; got {max_frames}.")
    out = pathlib.Path(path)
    fig = Figure(figsize=(5.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xy, p2 = proj.points(x), proj.points(steps)                   # (N, 2), (T+1, S, 2)
    colors = _seed_colors(ms, steps)
    ax.scatter(xy[:, 0], xy[:, 1], color="0.75", s=10, zorder=1, label="data")
    lines = [ax.plot([], [], color=c, linewidth=0.8, alpha=0.7)[0] for c in colors]
    heads = ax.scatter(p2[0, :, 0], p2[0, :, 1], c=colors, s=12, zorder=3, label="seeds")
    modes = proj.points(np.asarray(ms.cluster_centers_))
    ax.scatter(modes[:, 0], modes[:, 1], marker="*", s=250, color="none", edgecolors="black",
               zorder=4, label="final modes")
    allxy = np.concatenate([xy, p2.reshape(-1, 2)])
    pad = 0.05 * (allxy.max(0) - allxy.min(0) + 1e-12)
    ax.set_xlim(allxy[:, 0].min() - pad[0], allxy[:, 0].max() + pad[0])
    ax.set_ylim(allxy[:, 1].min() - pad[1], allxy[:, 1].max() + pad[1])
    proj.label(ax)
    ax.legend(fontsize="small", loc="upper right")
    frames = np.unique(np.linspace(0, len(p2) - 1, min(int(max_frames), len(p2))).round().astype(int))

    def update(t):
        for s, line in enumerate(lines):
            line.set_data(p2[: t + 1, s, 0], p2[: t + 1, s, 1])
        heads.set_offsets(p2[t])
        ax.set_title(f"Mean shift, step {t} of {len(p2) - 1}")
        return [*lines, heads]

    FuncAnimation(fig, update, frames=frames, blit=False).save(out, writer="pillow", fps=fps)
    return out
