"""Numba kernels behind :mod:`probmix.baselines.fused`; import that module, not this one.

Every kernel walks the rows in fixed chunks (``prange``: one chunk per task) and
writes per-chunk partial sums, which the caller adds up in chunk order: the
result does not depend on the number of threads. Inside a chunk the rows go in
blocks of ``block`` rows: one small matrix product (BLAS) gives the block's
distance or log-density table, then one loop over the rows reduces it and
accumulates, while the block is still in cache. No (N, K) table is ever stored.

Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["lloyd_pass", "assign_pass", "meanshift_ascend", "kpp_pass"]


@njit(cache=True, nogil=True, inline="always")
def _first_min_over_centres(dist, m, low, best):  # pragma: no cover - compiled
    """best[:m] = first index of the minimum of each column of dist[:, :m]."""
    d0 = dist[0]
    for i in range(m):
        low[i] = d0[i]
        best[i] = 0
    for j in range(1, dist.shape[0]):
        dj = dist[j]
        for i in range(m):
            v = dj[i]
            lt = v < low[i]  # strict: the first minimum wins ties
            low[i] = v if lt else low[i]
            best[i] = j if lt else best[i]


@njit(cache=True, nogil=True, inline="always")
def _scratch(x, k, mode, block):  # pragma: no cover - compiled
    """Per-task work arrays of :func:`_nearest`: low, best (block,), dist_kb (K, block) and
    cols (D, block) (empty unless mode 0)."""
    low = np.empty(block, dtype=x.dtype)
    best = np.empty(block, dtype=np.int64)
    dist_kb = np.empty((k if mode == 0 else 0, block), dtype=x.dtype)
    cols = np.empty((x.shape[1] if mode == 0 else 0, block), dtype=x.dtype)
    return low, best, dist_kb, cols


@njit(cache=True, nogil=True, inline="always")
def _nearest(rows, cka, cta, sqa, mode, low, best, dist_kb, cols):  # pragma: no cover - compiled
    """Nearest centre of each row of a block, into best[:b] (first minimum on ties).

    The distance table (without ‖x‖², the same for every centre) is built by:

    * mode 0 (a handful of features): the block is transposed into ``cols`` (D, block)
      and ``dist_kb`` (K, block) summed feature by feature in loops vectorised along
      rows, and the minimum runs over centres in the outer loop, also vectorised along
      rows: a BLAS call per block would cost more than its arithmetic and, made from
      several threads at once, does not scale;
    * mode 1: one BLAS product rows @ -2cᵀ, (b, K), reduced row by row.
    """
    m = rows.shape[0]
    k = sqa.shape[0]
    if mode == 0:
        d = rows.shape[1]
        for f in range(d):
            cf = cols[f]
            for i in range(m):
                cf[i] = rows[i, f]
        for j in range(k):
            dj = dist_kb[j]
            sj = sqa[j]
            for i in range(m):
                dj[i] = sj
            for f in range(d):
                cjf = cka[j, f]
                cf = cols[f]
                for i in range(m):
                    dj[i] += cjf * cf[i]
        _first_min_over_centres(dist_kb, m, low, best)
    else:
        dist = np.dot(rows, cta)  # (b, K)
        for i in range(m):
            di = dist[i]
            bi = 0
            lo = di[0] + sqa[0]
            for j in range(1, k):
                v = di[j] + sqa[j]
                if v < lo:
                    lo = v
                    bi = j
            best[i] = bi


@njit(parallel=True, cache=True, nogil=True)
def lloyd_pass(x, w, cka, cta, sq, mode, labels, sums, wsum, changed, chunk,
               block):  # pragma: no cover - compiled
    """Assign every row to its nearest centre and sum the rows per centre.

    x (N, D) C-contiguous; w (N,) or (0,) for unit weights; cka (R, K, D) = -2c and
    cta (R, D, K) = -2cᵀ; sq (R, K) = ‖c‖²; mode: see :func:`_nearest`; labels (R, N)
    int64, read (previous) and overwritten; outputs per chunk: sums (C, R, K, D), wsum
    (C, R, K), changed (C, R).
    """
    n = x.shape[0]
    r = cka.shape[0]
    weighted = w.shape[0] > 0
    for c in prange(sums.shape[0]):
        start = c * chunk
        stop = min(n, start + chunk)
        low, best, dist_kb, cols = _scratch(x, sq.shape[1], mode, block)
        for a in range(r):
            s = sums[c, a]
            ws = wsum[c, a]
            lab = labels[a]
            s[:] = 0.0
            ws[:] = 0.0
            moved = False
            for b0 in range(start, stop, block):
                b1 = min(stop, b0 + block)
                rows = x[b0:b1]
                _nearest(rows, cka[a], cta[a], sq[a], mode, low, best, dist_kb, cols)
                for i in range(b1 - b0):
                    bi = best[i]
                    moved |= lab[b0 + i] != bi
                    lab[b0 + i] = bi
                    wi = w[b0 + i] if weighted else 1.0
                    ws[bi] += wi
                    sb = s[bi]
                    xi = rows[i]
                    for f in range(xi.shape[0]):
                        sb[f] += wi * xi[f]
            changed[c, a] = moved


@njit(parallel=True, cache=True, nogil=True)
def assign_pass(x, w, cka, cta, sq, mode, centers, labels, inertia, chunk,
                block):  # pragma: no cover - compiled
    """Nearest centre of every row and the exact weighted squared distance to it.

    As :func:`lloyd_pass` for x, w, cka, cta, sq; centers (R, K, D); outputs labels (R, N)
    and per-chunk inertia (C, R) = Σ w ‖x - c_label‖², summed from the differences (no
    cancellation).
    """
    n = x.shape[0]
    r = cka.shape[0]
    weighted = w.shape[0] > 0
    for c in prange(inertia.shape[0]):
        start = c * chunk
        stop = min(n, start + chunk)
        low, best, dist_kb, cols = _scratch(x, sq.shape[1], mode, block)
        for a in range(r):
            lab = labels[a]
            total = 0.0
            for b0 in range(start, stop, block):
                b1 = min(stop, b0 + block)
                rows = x[b0:b1]
                _nearest(rows, cka[a], cta[a], sq[a], mode, low, best, dist_kb, cols)
                for i in range(b1 - b0):
                    bi = best[i]
                    lab[b0 + i] = bi
                    xi = rows[i]
                    cb = centers[a, bi]
                    e = 0.0
                    for f in range(xi.shape[0]):
                        t = xi[f] - cb[f]
                        e += t * t
                    total += (w[b0 + i] if weighted else 1.0) * e
            inertia[c, a] = total


@njit(parallel=True, cache=True, nogil=True)
def meanshift_ascend(xs, key, seeds, axis, h2, margin, flat, max_iter, stop2, pos, support,
                     iters, moving):  # pragma: no cover - compiled
    """Move every seed to its kernel-weighted mean until it stops, each seed on its own.

    xs (N, D): the points, sorted on column ``axis`` when ``flat`` (key = xs[:, axis]);
    seeds (S, D). Flat kernel: weight 1 within distance √h2 (boundary included), and only
    the points whose ``axis`` coordinate is within ``margin`` of the seed's are visited;
    Gaussian: weight exp(-d² / (2 h2)) over all points. Distances from the differences.
    A seed stops when no point has weight (it stays put) or when it moves by at most
    √stop2. Outputs: pos (S, D) final positions; support (S,) points within √h2 of the
    position before the last step; iters (S,) steps taken; moving (S,) still moving
    after ``max_iter`` steps.
    """
    n, d = xs.shape
    for s in prange(seeds.shape[0]):
        p = seeds[s].copy()
        acc = np.empty(d, dtype=xs.dtype)
        count = 0
        it = 0
        active = True
        while active and it < max_iter:
            it += 1
            lo, hi = 0, n
            if flat:
                lo = np.searchsorted(key, p[axis] - margin)
                hi = np.searchsorted(key, p[axis] + margin, side="right")
            acc[:] = 0.0
            total = 0.0
            count = 0
            for i in range(lo, hi):
                xi = xs[i]
                d2 = 0.0
                for f in range(d):
                    t = xi[f] - p[f]
                    d2 += t * t
                inside = d2 <= h2
                if flat:
                    if inside:
                        count += 1
                        for f in range(d):
                            acc[f] += xi[f]
                else:
                    wgt = np.exp(-0.5 * d2 / h2)
                    total += wgt
                    count += inside
                    for f in range(d):
                        acc[f] += wgt * xi[f]
            if flat:
                total = float(count)
            step2 = 0.0
            if total > 0:
                for f in range(d):
                    new = acc[f] / total
                    step2 += (new - p[f]) ** 2
                    p[f] = new
            active = total > 0 and step2 > stop2
        pos[s] = p
        support[s] = count
        iters[s] = it
        moving[s] = active


@njit(parallel=True, cache=True, nogil=True)
def kpp_pass(x, xsq, w, cand_t, csq, closest, pot, out, chunk, block):  # pragma: no cover
    """One pass of greedy k-means++ over the rows: every candidate's potential.

    x (N, D) centred rows, xsq (N,) their squared norms; w (N,) weights; cand_t (R, D, T)
    candidate centres, transposed, csq (R, T) their squared norms; closest (R, N) squared
    distance of every row to its nearest chosen centre. Per chunk, pot (C, R, T) =
    Σ w · min(closest, ‖x - cand‖²) over the chunk's rows, the squared distance being
    ‖x‖² - 2 x·c + ‖c‖² clamped at 0 (one BLAS product per block). When out (R, T, N) is
    not empty (N = 0 there), out[r, t, n] = min(closest, ‖x - cand‖²): the next ``closest``
    for whichever candidate wins; out may be ``closest`` itself (T = 1).
    """
    n = x.shape[0]
    r, _, t_count = cand_t.shape
    store = out.shape[2] > 0
    for c in prange(pot.shape[0]):
        start = c * chunk
        stop = min(n, start + chunk)
        acc = np.empty(t_count, dtype=x.dtype)
        for a in range(r):
            near = closest[a]
            ca = csq[a]
            acc[:] = 0.0
            for b0 in range(start, stop, block):
                b1 = min(stop, b0 + block)
                dots = np.dot(x[b0:b1], cand_t[a])  # (b, T)
                for i in range(b1 - b0):
                    row = b0 + i
                    wi = w[row]
                    di = dots[i]
                    lim = near[row]
                    for t in range(t_count):
                        d2 = max(xsq[row] - 2.0 * di[t] + ca[t], 0.0)
                        m = d2 if d2 < lim else lim
                        acc[t] += wi * m
                        if store:
                            out[a, t, row] = m
            pot[c, a] = acc
