"""The mean-shift walkthrough (JAX blog article), redone with probmix.

1. Seven blobs: centroids uniform in [-50, 50]², 250 points each, covariance diag(5, 5)
   (1,750 points). Mean shift with a Gaussian kernel of bandwidth 2, as in the article,
   finds the 7 centres; a table shows which bandwidths work and why.
2. Batched mean shift: the article's loop moves the points in batches of 1, 500, 1000.
   It is written out below in torch; every batch size gives the same positions (only the
   speed differs), and they are the positions ``probmix.MeanShift`` records in ``path_``,
   which moves all seeds at once. A figure of the paths and a GIF of the points
   converging are written.
3. Circles and moons (scikit-learn's make_circles / make_moons, rebuilt in numpy):
   shapes that neither KMeans nor mean shift recovers as whole clusters.

Run: python examples/walkthrough_meanshift.py [--fast] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display needed

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

import probmix  # noqa: E402
from probmix import plot  # noqa: E402

NAME = "walkthrough_meanshift"


# ----------------------------------------------------------------------------- data


def seven_blobs(n_per_blob: int, *, seed: int):
    """The article's data: 7 centroids uniform in [-50, 50]², N(centroid, 5 I) around each.

    Returns
    -------
    x : ndarray (7 n, 2)
    labels : ndarray (7 n,) int, the blob of each point
    centroids : ndarray (7, 2)
    """
    rng = np.random.default_rng(seed)
    centroids = rng.uniform(-50, 50, size=(7, 2))                          # (7, 2)
    labels = np.repeat(np.arange(7), n_per_blob)                           # (7n,)
    x = centroids[labels] + rng.normal(scale=np.sqrt(5.0), size=(labels.size, 2))
    return x, labels, centroids


def make_circles(n_samples: int = 1500, *, factor: float = 0.5, noise: float = 0.05, seed: int):
    """Two concentric circles; the same construction as ``sklearn.datasets.make_circles``.

    n // 2 points evenly spaced on the unit circle (label 0) and the rest on the circle of
    radius ``factor`` (label 1), both starting at angle 0 without the endpoint, then
    N(0, noise²) added to every coordinate. scikit-learn also shuffles the rows; this keeps
    them in order (shuffling changes nothing below). With ``noise=0`` the points equal
    scikit-learn's ``make_circles(n_samples, shuffle=False, factor=factor)``.

    Returns
    -------
    x : ndarray (n_samples, 2), labels : ndarray (n_samples,) int
    """
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    x = np.vstack([np.column_stack([np.cos(t_out), np.sin(t_out)]),
                   factor * np.column_stack([np.cos(t_in), np.sin(t_in)])])   # (n, 2)
    labels = np.repeat([0, 1], [n_out, n_in])
    return x + np.random.default_rng(seed).normal(scale=noise, size=x.shape), labels


def make_moons(n_samples: int = 1500, *, noise: float = 0.05, seed: int):
    """Two interleaving half circles; the construction of ``sklearn.datasets.make_moons``.

    The upper moon (label 0) is (cos t, sin t) for n // 2 values of t evenly spaced in
    [0, π]; the lower one (label 1) is (1 - cos t, 1/2 - sin t) for the rest. With
    ``noise=0`` the points equal ``make_moons(n_samples, shuffle=False)``.

    Returns
    -------
    x : ndarray (n_samples, 2), labels : ndarray (n_samples,) int
    """
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    x = np.vstack([np.column_stack([np.cos(t_out), np.sin(t_out)]),
                   np.column_stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5])])  # (n, 2)
    labels = np.repeat([0, 1], [n_out, n_in])
    return x + np.random.default_rng(seed).normal(scale=noise, size=x.shape), labels


# ----------------------------------------------------------------------------- scores


def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index of two labelings (1: identical partitions, about 0: chance)."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)                                           # contingency

    def pairs(v):
        return float((v * (v - 1) / 2).sum())

    both, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / pairs(np.array([table.sum()]))
    top = (rows + cols) / 2
    return 1.0 if top == expected else (both - expected) / (top - expected)


def purity(truth, labels) -> float:
    """Share of points whose cluster's majority true label is their own."""
    _, ti = np.unique(truth, return_inverse=True)
    return float(sum(np.bincount(ti[labels == k]).max() for k in np.unique(labels)) / len(ti))


def match_centres(found, truth):
    """Distances between true centres and the found modes, paired by the Hungarian method."""
    cost = np.linalg.norm(truth[:, None, :] - found[None, :, :], axis=-1)    # (7, M)
    rows, cols = linear_sum_assignment(cost)
    return cost[rows, cols]


# ----------------------------------------------------------------------------- the article's loop


def shift_in_batches(points: torch.Tensor, data: torch.Tensor, *, bandwidth: float,
                     batch_size: int) -> torch.Tensor:
    """One mean-shift step of every point, ``batch_size`` points at a time (the article's loop).

    Each point moves to the Gaussian-kernel-weighted mean of ``data``:
    p ← Σ_n w_n x_n / Σ_n w_n with w_n = exp(-‖p - x_n‖² / (2 h²)).

    Parameters
    ----------
    points : Tensor (S, D)
    data : Tensor (N, D)

    Returns
    -------
    Tensor (S, D)
    """
    out = torch.empty_like(points)
    for start in range(0, points.shape[0], batch_size):
        p = points[start:start + batch_size]                                # (B, D)
        weight = torch.exp(torch.cdist(p, data).square() / (-2 * bandwidth**2))   # (B, N)
        out[start:start + batch_size] = (weight @ data) / weight.sum(1, keepdim=True)
    return out


# ----------------------------------------------------------------------------- the walkthrough


def _out_dir(out, fast: bool) -> Path:
    if out is None:
        out = tempfile.mkdtemp(prefix=f"{NAME}-") if fast else Path("probmix-examples") / NAME
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _scatter_panels(panels, *, title):
    """A row of labelled scatter plots: panels = [(title, x (N, 2), labels (N,)), ...]."""
    fig = Figure(figsize=(4.2 * len(panels), 4.0), layout="constrained")
    for ax, (name, x, labels) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        ax.scatter(x[:, 0], x[:, 1], c=labels % 10, cmap="tab10", vmin=0, vmax=9, s=5)
        ax.set_title(name, fontsize="small")
        ax.set_aspect("equal")
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
    fig.suptitle(title)
    return fig


def main(*, fast: bool = False, out=None) -> dict:
    """Run the walkthrough; figures go to ``out``. Returns the numbers it prints."""
    out = _out_dir(out, fast)
    n_per_blob = 80 if fast else 250
    x, blob, centroids = seven_blobs(n_per_blob, seed=1)
    gap = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    gap = gap[np.triu_indices(7, 1)].min()
    print(f"Seven blobs: {len(x)} points, closest two centroids {gap:.1f} apart.")

    # Which bandwidths work. The kernel density of one blob is a Gaussian of variance 5 + h²
    # (blob variance plus kernel variance). Two equal blobs a distance d apart give one bump
    # when d < 2 sqrt(5 + h²) and two when d is larger: h = 2 separates blobs more than 6
    # apart, h = 4 more than 9.
    # Too small an h gives spurious modes in the sparse tails. scikit-learn's bandwidth rule
    # (quantile=0.3: the mean distance to the 30% nearest neighbours) spans several blobs
    # when each blob holds 1/7 of the points, so it merges everything: the quantile must
    # stay below 1/7.
    candidates = {"h = 1": 1.0, "h = 2 (article)": 2.0, "h = 2.5 (article's plots)": 2.5,
                  "h = 4": 4.0,
                  "estimate_bandwidth (quantile 0.3)": probmix.estimate_bandwidth(x),
                  "estimate_bandwidth(quantile=0.05)": probmix.estimate_bandwidth(x,
                                                                                  quantile=0.05)}
    table = {}
    print(f"\n{'bandwidth':36s} {'h':>6s} {'modes':>6s} {'worst centre error':>19s}")
    for label, h in candidates.items():
        ms = probmix.MeanShift(bandwidth=h, bin_seeding=True, seed=0).fit(x)
        modes = len(ms.cluster_centers_)
        err = match_centres(ms.cluster_centers_, centroids).max() if modes == 7 else np.nan
        table[label] = {"bandwidth": h, "modes": modes, "max_error": float(err)}
        print(f"{label:36s} {h:6.2f} {modes:6d} {err:19.3f}")
    print(f"(closest blobs {gap:.1f} apart > 2·sqrt(5 + 2²) = 6: h = 2 can separate every pair)")

    # The article's setting, every point a seed, keeping the path of every seed.
    t0 = time.perf_counter()
    ms = probmix.MeanShift(bandwidth=2.0, keep_path=True, seed=0).fit(x)
    seconds = time.perf_counter() - t0
    errors = match_centres(ms.cluster_centers_, centroids)
    agreement = adjusted_rand_index(blob, ms.labels_)
    print(f"\nMeanShift(bandwidth=2): {len(ms.cluster_centers_)} modes after {ms.n_iter_} steps "
          f"in {seconds:.2f} s; distance of each true centroid to its mode: max "
          f"{errors.max():.3f}, mean {errors.mean():.3f}; adjusted Rand index {agreement:.4f}")

    # Batched mean shift: the article's loop for several batch sizes, 5 steps. The batch
    # size trades memory (a B x N block of weights) for speed; the positions do not change.
    # probmix.MeanShift moves all seeds together (in blocks of bounded memory) and records
    # every step in path_, so path_[5] is the same computation. (The article also moved the
    # *data* with the points, "blurring" mean shift, which collapses faster; probmix keeps
    # the density of the original data fixed, as scikit-learn does, so it has true modes to
    # stop at.)
    data = torch.as_tensor(x)
    steps = 5
    batched = {}
    print(f"\nThe article's batched loop, {steps} steps, Gaussian kernel h = 2:")
    for batch_size in (1, 500, 1000, len(x)):
        if fast and batch_size == 1:
            continue
        points = data.clone()
        t0 = time.perf_counter()
        for _ in range(steps):
            points = shift_in_batches(points, data, bandwidth=2.0, batch_size=batch_size)
        seconds = time.perf_counter() - t0
        diff = float(np.abs(points.numpy() - ms.path_[min(steps, len(ms.path_) - 1)]).max())
        batched[batch_size] = {"seconds": seconds, "max_diff_to_probmix": diff}
        print(f"  batch size {batch_size:5d}: {seconds:7.3f} s, largest difference to "
              f"probmix's path_[{steps}]: {diff:.1e}")
    # Seeds that stop early (step below 1e-3 h) are frozen by probmix, hence differences
    # of order 1e-3 h rather than rounding error.

    files = []
    fig = plot.meanshift_paths(ms, x, title=f"Mean shift, h = 2: {len(x)} seeds → "
                                            f"{len(ms.cluster_centers_)} modes")
    fig.savefig(out / "meanshift_paths.png", dpi=90)
    files.append(out / "meanshift_paths.png")
    files.append(plot.meanshift_animation(ms, x, out / "meanshift.gif", fps=6,
                                          max_frames=12 if fast else 40))

    # Circles and moons: what neither algorithm does. KMeans cuts the plane by a straight
    # line (its clusters are Voronoi cells); mean shift finds modes, and a ring or a moon
    # has no single mode: with a bandwidth wide enough to give one mode per shape it gives
    # one mode in all, and with a narrow one it splits each shape into pure fragments that
    # need a graph method (DBSCAN, agglomerative, spectral clustering) to be joined.
    n = 500 if fast else 1500
    shapes = {"circles": make_circles(n, factor=0.5, noise=0.05, seed=0),
              "moons": make_moons(n, noise=0.05, seed=0)}
    shape_scores = {}
    panels = []
    print("\nShapes (adjusted Rand index with the true shapes, purity, clusters):")
    for name, (xs, truth) in shapes.items():
        fits = {"KMeans(2)": probmix.KMeans(2, n_init=10, seed=0).fit(xs)}
        h = probmix.estimate_bandwidth(xs)
        fits[f"MeanShift(h={h:.2f}, estimated)"] = probmix.MeanShift(bandwidth=h, seed=0).fit(xs)
        with warnings.catch_warnings():  # a few seeds creep along a ridge: not the point here
            warnings.simplefilter("ignore", probmix.ConvergenceWarning)
            fits["MeanShift(h=0.1)"] = probmix.MeanShift(bandwidth=0.1, seed=0).fit(xs)
        shape_scores[name] = {}
        panels.append((f"{name}: truth", xs, truth))
        for method, est in fits.items():
            score = {"ari": adjusted_rand_index(truth, est.labels_),
                     "purity": purity(truth, est.labels_),
                     "clusters": int(len(np.unique(est.labels_)))}
            shape_scores[name][method] = score
            panels.append((f"{name}: {method}, {score['clusters']} clusters", xs, est.labels_))
            print(f"  {name:8s} {method:32s} ARI {score['ari']:6.3f}  purity "
                  f"{score['purity']:.3f}  {score['clusters']:3d} clusters")
    fig = _scatter_panels(panels[:4], title="Circles: KMeans cuts straight, mean shift finds "
                                            "modes, and rings have none")
    fig.savefig(out / "circles.png", dpi=80)
    fig = _scatter_panels(panels[4:], title="Moons: the same")
    fig.savefig(out / "moons.png", dpi=80)
    files += [out / "circles.png", out / "moons.png"]
    print(f"\nFigures: {', '.join(str(f) for f in files)}")
    return {"n_points": len(x), "centroids": centroids, "centres": ms.cluster_centers_,
            "centre_errors": errors, "ari": agreement, "n_iter": ms.n_iter_,
            "bandwidth_table": table, "batched": batched, "shapes": shape_scores,
            "files": files}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="smaller data (a test run)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for the figures (default ./probmix-examples/{NAME}; "
                             "a temporary folder with --fast)")
    args = parser.parse_args()
    results = main(fast=args.fast, out=args.out)
