"""Figures of an inference run: SVI loss curve, selection criterion, MCMC trace and rank plots."""

from __future__ import annotations

import numpy as np

from probmix.plot._common import _new_axes, _require_draws

__all__ = ["loss_curve", "criterion", "trace", "rank"]


def loss_curve(fit, *, window: int | None = None, ax=None):
    """The objective per step: SVI's loss with its running mean, CAVI's ELBO per iteration.

    Parameters
    ----------
    fit : Fit
        A fit with ``fit.losses`` (n_steps,): engine="svi", stochastic (the loss, negative
        ELBO, per step) or CAVI (the ELBO, ``-losses``, per iteration, drawn with markers:
        coordinate ascent takes few iterations and never decreases it).
    window : int, optional
        Running-mean width of the SVI loss; default max(1, n_steps // 20).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Titled by the method; the y axis shows plain values (no offset).

    Raises
    ------
    ValueError
        If the fit recorded no losses.
    """
    losses = np.asarray(fit.losses, dtype=float)
    if losses.size == 0:
        raise ValueError(f"this fit (engine={fit.engine!r}) recorded no losses: loss curves exist "
                         "for engine='svi': stochastic SVI (pass guide='normal': a "
                         "GaussianMixture's default guide='laplace' takes no steps) or CAVI.")
    window = max(1, losses.size // 20) if window is None else int(window)
    if window < 1:
        raise ValueError(f"window must be a positive integer; got {window}.")
    method = (fit.options or {}).get("method", "stochastic")
    fig, ax = _new_axes(ax, figsize=(6.5, 4.0))
    steps = np.arange(1, losses.size + 1)
    if method == "cavi":
        elbo = -losses
        ax.plot(steps, elbo, color="C0", marker="o", label="ELBO after each iteration")
        ax.set_xlabel("iteration")
        ax.set_ylabel("ELBO (evidence lower bound)")
        ax.set_title(f"CAVI: ELBO over {losses.size} iteration{'s' * (losses.size != 1)}, "
                     f"last {elbo[-1]:.6g}")
        if losses.size <= 20:
            ax.set_xticks(steps)
    else:
        ax.plot(steps, losses, color="0.6", linewidth=0.8, label="loss per step")
        if losses.size >= window:
            running = np.convolve(losses, np.ones(window) / window, mode="valid")  # (n - w + 1,)
            ax.plot(steps[window - 1:], running, color="C3", linewidth=2,
                    label=f"running mean ({window} steps)")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (negative ELBO)")
        ax.set_title(f"SVI ({method}): loss over {losses.size} steps, last {losses[-1]:.6g}")
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.legend(loc="best")
    return fig


def criterion(selection, *, ax=None):
    """A selection criterion against the number of components, best model marked.

    One covariance family: the criterion against K (with error bars for loo/waic). Several
    (``select(..., covariance="all")``): mclust's BIC-by-K figure, one line per family. Drawn
    in probmix's sign, where BIC, AIC and ICL are lower-is-better (BIC = -2 log L + p log N,
    the negative of the BIC mclust plots); elpd (loo, waic) is higher-is-better.

    Parameters
    ----------
    selection : Selection
        From :func:`probmix.select`; its table has a ``k`` column (or is indexed by K), the
        criterion's column, optionally ``se`` and ``covariance``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = selection.table
    families = list(table["covariance"].unique()) if "covariance" in table.columns else []
    if len(families) > 1:
        return _criterion_by_family(selection, families, ax)
    column = selection.column
    ks = np.asarray(table["k"] if "k" in table.columns else table.index, dtype=int)
    values = np.asarray(table[column], dtype=float)
    fig, ax = _new_axes(ax, figsize=(6.0, 4.0))
    se = np.asarray(table["se"], dtype=float) if "se" in table.columns else None
    ax.errorbar(ks, values, yerr=se, marker="o", capsize=3, color="C0",
                label=column + (" ± se" if se is not None else ""))
    best = int(selection.best)
    ax.plot([best], [values[list(ks).index(best)]], marker="*", markersize=18, color="C3",
            linestyle="none", label=f"best K = {best}", zorder=3)
    lower = selection.criterion in ("bic", "aic", "icl")
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{column} ({'lower' if lower else 'higher'} is better)")
    ax.set_xticks(ks)
    family = f", covariance {families[0]}" if families else ""
    ax.set_title(f"Model selection by {selection.criterion.upper()}{family}")
    ax.legend()
    return fig


_MARKERS = "os^vD<>phP*X8dH"


def _criterion_by_family(selection, families, ax):
    """mclust's plot(mclustBIC): the criterion against K, one line and marker per family."""
    import matplotlib

    table, column = selection.table, selection.column
    lower = selection.lower_is_better
    fig, ax = _new_axes(ax, figsize=(8.5, 5.0))
    colours = matplotlib.colormaps["tab20"]
    for i, name in enumerate(families):
        rows = table[table["covariance"] == name].sort_values("k")
        ax.plot(rows["k"], rows[column], marker=_MARKERS[i % len(_MARKERS)], markersize=5,
                linewidth=1, color=colours(i % 20), label=name)  # a failed fit (NaN) is a gap
    best = table[(table["covariance"] == selection.best_covariance)
                 & (table["k"] == selection.best)]
    ax.plot(best["k"], best[column], marker="*", markersize=18, color="C3", linestyle="none",
            label=f"best: {selection.best_covariance}, K = {selection.best}", zorder=3)
    ks = np.unique(np.asarray(table["k"], dtype=int))
    ax.set_xticks(ks)
    ax.set_xlabel("number of components K")
    sign = ("probmix's sign (−2 log L + penalty): lower is better" if lower
            else "higher is better")
    ax.set_ylabel(f"{column} ({'lower' if lower else 'higher'} is better)")
    ax.set_title(f"{selection.criterion.upper()} by covariance model and K\n{sign}"
                 + ("; mclust plots the negative" if lower else ""), fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="covariance",
              borderaxespad=0.0)
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
