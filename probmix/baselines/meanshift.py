"""MeanShift: every seed climbs the kernel density estimate at once.

Each iteration moves all active seeds together to the kernel-weighted mean of
the data: the weights come from the kernel of the (seeds x points) distance
matrix, built in blocks of seeds so that memory stays O(block x N). Seeds
whose step falls under ``1e-3 * bandwidth`` freeze. The modes found are then
merged as scikit-learn does (sorted by support, a mode suppresses every other
mode within one bandwidth) and each point takes the label of its nearest mode.

With ``kernel="flat"`` this is scikit-learn's ``MeanShift`` (same seeds, same
stopping rule, same merging), so both give the same centres and labels.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch

from probmix.baselines import fused
from probmix.io import persistence
from probmix.io.data import as_data, check_n_features
from probmix.exceptions import ConvergenceWarning
from probmix._validation import check_int, check_seed

__all__ = ["MeanShift", "estimate_bandwidth"]

# Elements of one (seeds x points) block: bounds the working memory to a few tens of MiB.
_BLOCK_ELEMENTS = 1 << 21


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__}).")
    return bool(value)


def _check_bandwidth(bandwidth, *, allow_none: bool):
    if bandwidth is None and allow_none:
        return None
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, numbers.Real):
        raise TypeError(f"bandwidth must be a number > 0{' or None' if allow_none else ''}; "
                        f"got {bandwidth!r} ({type(bandwidth).__name__}).")
    if not math.isfinite(bandwidth) or bandwidth <= 0:
        raise ValueError(
            f"bandwidth must be a finite number > 0{' or None (estimated)' if allow_none else ''}; "
            f"got {bandwidth!r}. Pass e.g. bandwidth=estimate_bandwidth(x)."
        )
    return float(bandwidth)


# ----------------------------------------------------------------------------- kernels


def _flat(sq_dist: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """1 inside the ball of radius ``bandwidth`` (boundary included), 0 outside."""
    return (sq_dist <= bandwidth * bandwidth).to(sq_dist.dtype)


def _gaussian(sq_dist: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """exp(-d^2 / (2 h^2)): a Gaussian of standard deviation ``bandwidth``."""
    return torch.exp(sq_dist * (-0.5 / (bandwidth * bandwidth)))


_KERNELS = {"flat": _flat, "gaussian": _gaussian}


# ----------------------------------------------------------------------------- bandwidth


def estimate_bandwidth(x, *, quantile: float = 0.3, n_samples: int | None = None, seed=0,
                       device=None, dtype=None) -> float:
    """Bandwidth for mean shift: mean distance of the points to their k-th nearest neighbour.

    ``k = max(1, int(N * quantile))``, where each point counts as its own
    first neighbour (scikit-learn's ``estimate_bandwidth``). Takes O(N^2)
    time, in row blocks of bounded memory; pass ``n_samples`` to use a random
    subset on large data.

    Parameters
    ----------
    x : array-like, shape (N, D)
    quantile : float in [0, 1], default 0.3
    n_samples : int, optional
        Size of the random subset used; default all rows.
    seed : int, default 0
        Seed of the subset draw.
    device, dtype : optional
        Where and in which precision to compute.

    Returns
    -------
    float
    """
    if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real) \
            or not 0 <= quantile <= 1:
        raise ValueError(f"quantile must be a number in [0, 1]; got {quantile!r}. "
                         "0.3 is the usual choice; smaller gives a narrower bandwidth.")
    seed = check_seed(seed)
    x = as_data(x, name="x", device=device, dtype=dtype)
    if n_samples is not None:
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        if n_samples < x.shape[0]:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(0 if seed is None else seed)
            x = x[torch.randperm(x.shape[0], generator=gen, device=x.device)[:n_samples]]
    return _estimate_bandwidth(x, quantile)


def _estimate_bandwidth(x: torch.Tensor, quantile: float) -> float:
    n = x.shape[0]
    k = max(1, int(n * quantile))
    total = torch.zeros((), dtype=x.dtype, device=x.device)
    step = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n, step):
        # Direct differences (not the expanded form): exact zeros on duplicates and self.
        dist = torch.cdist(x[start:start + step], x,
                           compute_mode="donot_use_mm_for_euclid_dist")  # (b, N)
        total += dist.kthvalue(k, dim=1).values.sum()
    return float(total) / n


# ----------------------------------------------------------------------------- the ascent


def _unique_rows(cells: torch.Tensor):
    """Distinct rows of integer-valued ``cells`` (N, D), sorted lexicographically, and counts.

    Same as ``torch.unique(cells, dim=0, return_counts=True)``, which sorts rows slowly:
    each row is packed into one int64 (mixed radix over the per-column ranges) and the
    1-D unique runs on those; when the ranges do not fit in 62 bits the 2-D one is used.
    """
    lo, hi = cells.amin(0), cells.amax(0)
    span = hi - lo + 1  # (D,)
    if bool((hi.abs() < 2.0**52).all() & (lo.abs() < 2.0**52).all()) \
            and float(span.log2().sum()) < 62:
        span = span.long()
        stride = torch.cumprod(torch.cat([span.flip(0)[:-1].new_ones(1), span.flip(0)[:-1]]),
                               0).flip(0)  # (D,) last column varies fastest
        key = ((cells - lo).long() * stride).sum(1)  # (N,)
        keys, counts = torch.unique(key, sorted=True, return_counts=True)
        digits = (keys[:, None] // stride) % span  # (U, D)
        return digits.to(cells.dtype) + lo, counts
    return torch.unique(cells, dim=0, return_counts=True)


def _bin_seeds(x: torch.Tensor, bandwidth: float, min_bin_freq: int, stacklevel: int):
    """Centres of the grid cells of side ``bandwidth`` holding >= min_bin_freq points."""
    cells, counts = _unique_rows(torch.round(x / bandwidth))
    seeds = cells[counts >= min_bin_freq] * bandwidth  # (S, D)
    if seeds.shape[0] == 0:
        raise ValueError(f"No grid cell of side bandwidth={bandwidth:g} holds min_bin_freq="
                         f"{min_bin_freq} points; lower min_bin_freq or raise the bandwidth.")
    if seeds.shape[0] == x.shape[0]:
        warnings.warn(f"Binning with bin size {bandwidth:g} put every point in its own cell; "
                      "using the data points as seeds. Raise the bandwidth to bin coarser.",
                      UserWarning, stacklevel=stacklevel)
        return x
    return seeds


def _ascend(x, seeds, *, bandwidth: float, kernel, max_iter: int, keep_path: bool):
    """Move all seeds to their kernel-weighted means until they stop.

    Parameters
    ----------
    x : Tensor, shape (N, D)
        Centred data.
    seeds : Tensor, shape (S, D)
        Starting positions, same frame as ``x``.

    Returns
    -------
    position : Tensor, shape (S, D)
        Final positions.
    support : Tensor, shape (S,), int64
        Points within one bandwidth of the position before the last step
        (0 marks a seed that found no point and is dropped).
    n_iter : int
        Steps taken by the slowest seed.
    converged : bool
        Whether every seed stopped before ``max_iter``.
    path : list of Tensor (S, D)
        Positions before the first step and after each step (empty unless keep_path).
    """
    n, d = x.shape
    s = seeds.shape[0]
    dev = x.device
    h2 = bandwidth * bandwidth
    stop_shift2 = (1e-3 * bandwidth) ** 2
    flat = kernel is _flat
    # For the flat kernel only the points whose coordinate along the widest axis is
    # within one bandwidth of a seed can be inside its ball: sorting the points on that
    # axis lets each seed (or block of seeds) look at a window of points.
    axis = int(x.var(0, correction=0).argmax())  # population variance: defined for one row
    xs = x[torch.argsort(x[:, axis])] if flat else x  # (N, D), sorted on the axis if flat
    if fused.enabled(x) and not keep_path:
        pos, support, n_iter, converged = fused.meanshift_ascend(
            xs, seeds, axis=axis, bandwidth=bandwidth, flat=flat, max_iter=max_iter,
            stop_shift=1e-3 * bandwidth)
        return pos, support, n_iter, converged, []
    pos = seeds.clone()  # (S, D)
    support = torch.zeros(s, dtype=torch.long, device=dev)  # (S,)
    active = torch.ones(s, dtype=torch.bool, device=dev)  # (S,)
    path = [pos.clone()] if keep_path else []
    key = xs[:, axis].contiguous()  # (N,)
    xsq = (xs * xs).sum(1)  # (N,)
    # The window is widened by the rounding error of the expanded squared distance,
    # so that it never cuts off a point the kernel would count.
    scale = max(float(xsq.max()), float((seeds * seeds).sum(1).max()))
    margin = math.sqrt(h2 + 8 * torch.finfo(x.dtype).eps * scale) * (1 + 1e-6)
    block = max(1, _BLOCK_ELEMENTS // n)
    n_iter = 0
    for _ in range(max_iter):
        ids = active.nonzero().flatten()  # (A,)
        if ids.numel() == 0:
            break
        n_iter += 1
        if flat:
            ids = ids[torch.argsort(pos[ids, axis])]
        for start in range(0, ids.numel(), block):
            blk = ids[start:start + block]  # (b,)
            p = pos[blk]  # (b, D)
            lo, hi = 0, n
            if flat:
                bounds = torch.stack([p[:, axis].min() - margin, p[:, axis].max() + margin])
                lo, hi = torch.searchsorted(key, bounds).tolist()
            sq = torch.addmm(xsq[lo:hi], p, xs[lo:hi].T, alpha=-2.0)  # (b, W)
            sq += (p * p).sum(1, keepdim=True)
            sq.clamp_min_(0.0)
            weight = kernel(sq, bandwidth)  # (b, W)
            total = weight.sum(1)  # (b,)
            # support: points within one bandwidth (the flat kernel's weights count them)
            count = total.round().long() if flat else (sq <= h2).sum(1)  # (b,)
            found = total > 0  # (b,)
            new = (weight @ xs[lo:hi]) / torch.where(found, total, 1.0)[:, None]  # (b, D)
            new = torch.where(found[:, None], new, p)
            step2 = ((new - p) ** 2).sum(1)  # (b,)
            pos[blk] = new
            support[blk] = count
            active[blk] = found & (step2 > stop_shift2)
        if keep_path:
            path.append(pos.clone())
    converged = not bool(active.any())
    return pos, support, n_iter, converged, path


def _merge_modes(modes: torch.Tensor, support: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Keep the best-supported modes, each suppressing the others within ``bandwidth``.

    Candidates are ranked by support, ties broken by their coordinates (both
    descending, as scikit-learn sorts them); the loop runs once per mode kept.
    """
    order = torch.arange(modes.shape[0], device=modes.device)
    for j in reversed(range(modes.shape[1])):  # lexicographic sort, last key first
        order = order[torch.sort(modes[order, j], descending=True, stable=True).indices]
    order = order[torch.sort(support[order], descending=True, stable=True).indices]
    ranked = modes[order]  # (M, D)
    alive = torch.ones(ranked.shape[0], dtype=torch.bool, device=modes.device)
    kept = []
    while bool(alive.any()):
        i = int(alive.to(torch.uint8).argmax())  # best remaining mode
        kept.append(i)
        alive &= ((ranked - ranked[i]) ** 2).sum(1).sqrt() > bandwidth
    return ranked[kept]  # (K, D)


def _nearest(x: torch.Tensor, centers: torch.Tensor):
    """Index of and distance to the nearest centre, in row blocks: (N,), (N,)."""
    step = max(1, _BLOCK_ELEMENTS // max(1, centers.shape[0]))
    idx, dist = [], []
    for start in range(0, x.shape[0], step):
        dd = torch.cdist(x[start:start + step], centers,
                         compute_mode="donot_use_mm_for_euclid_dist")  # (b, K)
        v, i = dd.min(1)
        idx.append(i)
        dist.append(v)
    return torch.cat(idx), torch.cat(dist)


# ----------------------------------------------------------------------------- estimator


@persistence.register("MeanShift")
class MeanShift(persistence.AttributeState):
    """Mean-shift clustering, all seeds moving together.

    Parameters
    ----------
    bandwidth : float, optional
        Kernel scale: the radius of the flat kernel, the standard deviation of
        the Gaussian one. Default: :func:`estimate_bandwidth` of the data.
    kernel : {"gaussian", "flat"}, default "gaussian"
    seeds : array-like, shape (S, D), optional
        Starting positions; default every point (or the bins, see ``bin_seeding``).
    bin_seeding : bool, default False
        Start from the centres of the grid cells of side ``bandwidth`` holding at
        least ``min_bin_freq`` points instead of from every point (fewer seeds).
    min_bin_freq : int, default 1
    cluster_all : bool, default True
        If False, points farther than one bandwidth from every mode get label -1.
    max_iter : int, default 300
        Most mean-shift steps per seed.
    keep_path : bool, default False
        Store the seed positions after every step in ``path_``.
    seed : int, optional
        Seed of any random draw (mean shift itself is deterministic).
    device : str or torch.device, optional
    dtype : torch.float32 or torch.float64, optional

    Attributes
    ----------
    cluster_centers_ : ndarray, shape (K, D)
        Modes, by decreasing support.
    labels_ : ndarray, shape (N,), int64
    bandwidth_ : float
    n_iter_ : int
        Mean-shift steps taken by the slowest seed, the last (converging) step
        included; scikit-learn counts one fewer.
    path_ : ndarray, shape (n_iter_ + 1, S, D), or None
        Seed positions at the start and after each step (``keep_path=True``).
    """

    def __init__(self, *, bandwidth=None, kernel="gaussian", seeds=None, bin_seeding=False,
                 min_bin_freq=1, cluster_all=True, max_iter=300, keep_path=False, seed=None,
                 device=None, dtype=None):
        self.bandwidth = _check_bandwidth(bandwidth, allow_none=True)
        if kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {sorted(_KERNELS)}; got {kernel!r}.")
        self.kernel = kernel
        self.seeds = seeds
        self.bin_seeding = _check_bool(bin_seeding, "bin_seeding")
        self.min_bin_freq = check_int(min_bin_freq, "min_bin_freq", minimum=1)
        self.cluster_all = _check_bool(cluster_all, "cluster_all")
        self.max_iter = check_int(max_iter, "max_iter", minimum=1)
        self.keep_path = _check_bool(keep_path, "keep_path")
        self.seed = check_seed(seed)
        self.device = device
        self.dtype = dtype

    def fit(self, x):
        """Find the modes of ``x`` and label every point.

        Parameters
        ----------
        x : array-like, shape (N, D)

        Returns
        -------
        self
        """
        self._fit(x, stacklevel=3)
        return self

    def fit_predict(self, x) -> np.ndarray:
        """Fit and return ``labels_``, shape (N,)."""
        self._fit(x, stacklevel=3)
        return self.labels_

    def _fit(self, x, *, stacklevel: int):
        x = as_data(x, name="x", device=self.device, dtype=self.dtype)
        bandwidth = self.bandwidth
        if bandwidth is None:
            bandwidth = _estimate_bandwidth(x, 0.3)
            if not bandwidth > 0:
                raise ValueError("The estimated bandwidth is 0 (too many duplicate points); "
                                 "pass bandwidth=... explicitly.")
        if self.seeds is not None:
            seeds = as_data(self.seeds, name="seeds", device=x.device, dtype=x.dtype)
            check_n_features(seeds, x.shape[1], name="seeds")
        elif self.bin_seeding:
            seeds = _bin_seeds(x, bandwidth, self.min_bin_freq, stacklevel + 1)
        else:
            seeds = x
        mean = x.mean(0)  # (D,) work in a centred frame for accurate distances
        pos, support, n_iter, converged, path = _ascend(
            x - mean, seeds - mean, bandwidth=bandwidth, kernel=_KERNELS[self.kernel],
            max_iter=self.max_iter, keep_path=self.keep_path)
        found = support > 0
        if not bool(found.any()):
            raise ValueError(f"No point lies within bandwidth={bandwidth:g} of any seed; "
                             "raise the bandwidth or pass other seeds.")
        centers = _merge_modes(pos[found], support[found], bandwidth) + mean  # (K, D)
        idx, dist = _nearest(x, centers)
        if not self.cluster_all:
            idx = torch.where(dist <= bandwidth, idx, -1)
        self._centers = centers
        self._n_features = x.shape[1]
        self.bandwidth_ = float(bandwidth)
        self.cluster_centers_ = centers.cpu().numpy()
        self.labels_ = idx.cpu().numpy()
        self.n_iter_ = n_iter
        self.path_ = (torch.stack(path) + mean).cpu().numpy() if self.keep_path else None
        if not converged:
            warnings.warn(f"MeanShift: some seeds were still moving after max_iter="
                          f"{self.max_iter} steps; increase max_iter.",
                          ConvergenceWarning, stacklevel=stacklevel)

    def predict(self, x) -> np.ndarray:
        """Index of the nearest mode of each row of ``x``, shape (N,), int64."""
        if not hasattr(self, "_centers"):
            raise RuntimeError("This MeanShift instance is not fitted yet; call .fit(x) before "
                               ".predict(x).")
        x = as_data(x, name="x", device=self._centers.device, dtype=self._centers.dtype)
        check_n_features(x, self._n_features)
        return _nearest(x, self._centers)[0].cpu().numpy()

    def __repr__(self) -> str:
        return (f"MeanShift(bandwidth={self.bandwidth}, kernel={self.kernel!r}, "
                f"bin_seeding={self.bin_seeding}, cluster_all={self.cluster_all}, "
                f"max_iter={self.max_iter})")

    # -- persistence

    def save(self, path) -> None:
        """Write the settings and fitted state to ``path`` (``.npz`` + JSON header, no pickle).

        See :mod:`probmix.io.persistence`; read it back with ``MeanShift.load(path)``.
        """
        persistence.save(self, path)

    @classmethod
    def load(cls, path, *, device=None) -> "MeanShift":
        """Read a MeanShift written by :meth:`save` (nothing in the file is executed).

        ``device`` moves the fitted state (default: where it was saved).
        """
        return persistence.load_as(cls, path, device=device)
