"""What every figure module shares: colours, axes, legends and σ-ellipses."""

from __future__ import annotations

import numpy as np

__all__: list[str] = []


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


LEGEND_OUTSIDE = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
"""Legend keywords that put it right of the axes, where it covers no point."""


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


def _require_draws(fit, what: str) -> None:
    if not fit.draws:
        raise ValueError(f"{what} needs posterior draws, but this fit (engine={fit.engine!r}) has "
                         "none: refit with engine='svi' (e.g. method='cavi') or engine='mcmc'.")
