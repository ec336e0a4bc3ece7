"""What the commands write: the output folder, figures, and the parameter lines they print."""

from __future__ import annotations

import numpy as np

from probmix.cli.outfolder import OutputFolder

__all__ = ["fit_figures", "labels_figure", "out_dir", "print_parameters", "save_figure",
           "status"]


def out_dir(args, command: str) -> OutputFolder | None:
    """The ``--out`` folder, made and checked writable (call it before any work), or None."""
    return OutputFolder(args.out, command) if args.out else None


def save_figure(fig, out: OutputFolder, name: str) -> None:
    """Write ``fig`` as the PNG ``name`` in ``out`` (the one place figures are saved)."""
    out.figure(fig, name)


def status(fit) -> str:
    """The fit's convergence status for the summary line (samplers have none: see r_hat)."""
    if fit.converged is not None:
        return f"converged={fit.converged}"
    if fit.engine == "mcmc":
        return "a sampler: judge it by r_hat and ESS (warnings above if they are off)"
    return "one pass, no convergence test"


def labels_figure(x, labels, centers, names, title):
    """Points coloured by label with the centres marked (first two columns; one column: strip)."""
    from matplotlib.figure import Figure

    from probmix.plot._common import _palette

    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    colors = [_palette(i) for i in labels]
    if x.shape[1] == 1:
        ax.scatter(x[:, 0], np.zeros(len(x)), c=colors, marker="|", s=60)
        ax.scatter(centers[:, 0], np.zeros(len(centers)), marker="X", s=120, c="k")
        ax.set_xlabel(names[0])
    else:
        ax.scatter(x[:, 0], x[:, 1], c=colors, s=10, alpha=0.6, linewidths=0)
        ax.scatter(centers[:, 0], centers[:, 1], marker="X", s=120, c="k", label="centres")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.legend()
    ax.set_title(title)
    return fig


def print_parameters(summary: dict) -> None:
    """One line per scalar parameter: the estimate, and sd and interval when there are draws."""
    params = summary["parameters"]
    interval = summary.get("interval")
    if interval:
        p = round(100 * interval["prob"])
        print(f"{'parameter':<20} {'mean':>10} {'sd':>9}   {p}% interval")
    else:
        print(f"{'parameter':<20} {'mode':>10}")
    for name, value in params.items():
        if name == "covariances" and "weights" in params:
            continue  # printed per component below (diagonal), full matrices are in the JSON
        _print_site(name, value, interval)
    if "covariances" in params and "weights" in params:
        cov = params["covariances"]
        mean = np.asarray(cov["mean"] if isinstance(cov, dict) else cov)
        variances = np.diagonal(mean, axis1=-2, axis2=-1)
        for k, v in enumerate(variances):
            print(f"{f'variances[{k}]':<20} " + " ".join(f"{vi:10.4g}" for vi in v))


def _print_site(name, value, interval) -> None:
    if not isinstance(value, dict):
        value = {"mean": value}
    mean = np.asarray(value["mean"], dtype=float)
    sd = np.asarray(value.get("sd", np.full(mean.shape, np.nan)), dtype=float)
    low = np.asarray(value.get("low", np.full(mean.shape, np.nan)), dtype=float)
    high = np.asarray(value.get("high", np.full(mean.shape, np.nan)), dtype=float)
    for idx in np.ndindex(mean.shape):
        label = f"{name}[{','.join(map(str, idx))}]" if idx else name
        line = f"{label:<20} {mean[idx]:10.4g}"
        if interval and not np.isnan(sd[idx]):
            line += f" {sd[idx]:9.3g}   [{low[idx]:.4g}, {high[idx]:.4g}]"
        print(line)


def fit_figures(fit, x, out: OutputFolder) -> None:
    """clusters.png, pairs.png, classification_uncertainty.png (and uncertainty.png, loss.png,
    trace.png where they apply)."""
    from probmix import plot

    if getattr(fit.model, "family", None) is not None:
        save_figure(plot.clusters(fit, x), out, "clusters.png")
        save_figure(plot.pairs(fit, x), out, "pairs.png")
        if fit.draws and x.shape[1] >= 2:
            save_figure(plot.uncertainty(fit, x), out, "uncertainty.png")
    else:
        labels = fit.predict(x)
        centers = np.stack([x[labels == k].mean(0) if np.any(labels == k) else
                            np.full(x.shape[1], np.nan) for k in range(labels.max() + 1)])
        save_figure(labels_figure(x, labels, centers, fit.feature_names
                                  or [str(i) for i in range(x.shape[1])],
                                  f"{fit.engine} fit of the program: points by predicted "
                                  "component"), out, "clusters.png")
    save_figure(plot.classification_uncertainty(fit, x), out, "classification_uncertainty.png")
    if len(fit.losses):
        save_figure(plot.loss_curve(fit), out, "loss.png")
    if fit.engine == "mcmc":
        save_figure(plot.trace(fit, var_names=("weights",) if "weights" in fit.draws else None),
                    out, "trace.png")
