"""The mean-shift ascent: all seeds climb the kernel density estimate together, in blocks.

Each iteration moves all active seeds to the kernel-weighted mean of the data: the
weights come from the kernel of the (seeds x points) distance matrix, built in blocks of
seeds so that memory stays O(block x N). Seeds whose step falls under ``1e-3 *
bandwidth`` freeze. The modes found are merged as scikit-learn does (sorted by support, a
mode suppresses every other mode within one bandwidth). Where numba is available the CPU
ascent runs as a fused loop (:mod:`probmix.baselines.fused`). The estimator is
:class:`probmix.baselines.meanshift.MeanShift`.
"""

from __future__ import annotations

import math
import warnings

import torch

from probmix.baselines import fused

__all__ = ["KERNELS"]

# Elements of one (seeds x points) block: bounds the working memory to a few tens of MiB.
_BLOCK_ELEMENTS = 1 << 21


# ----------------------------------------------------------------------------- kernels


def _flat(sq_dist: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """1 inside the ball of radius ``bandwidth`` (boundary included), 0 outside."""
    return (sq_dist <= bandwidth * bandwidth).to(sq_dist.dtype)


def _gaussian(sq_dist: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """exp(-d^2 / (2 h^2)): a Gaussian of standard deviation ``bandwidth``."""
    return torch.exp(sq_dist * (-0.5 / (bandwidth * bandwidth)))


KERNELS = {"flat": _flat, "gaussian": _gaussian}


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
    if fused.enabled(x, work=n * s) and not keep_path:
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
