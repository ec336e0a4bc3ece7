"""Figures of a MeanShift fit: the seeds' paths to the modes, and a GIF of them moving."""

from __future__ import annotations

import pathlib

import numpy as np

from probmix.plot._common import _as_points, _new_axes, _palette
from probmix.plot.projection import Projection, feature_labels

__all__ = ["meanshift_paths", "meanshift_animation"]


def _meanshift_view(ms, x):
    """Checked data, path (T+1, S, D) and the 2-D projection of both."""
    path = getattr(ms, "path_", None)
    if path is None:
        raise ValueError("the MeanShift has no path: fit probmix.MeanShift(keep_path=True).")
    names = feature_labels(None, x, path.shape[-1])  # a DataFrame's columns name the axes
    x = _as_points(x, path.shape[-1])
    if x.shape[1] < 2:
        raise ValueError("mean-shift path plots need D >= 2 features.")
    return x, path, Projection.plane(x, None, names)


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
