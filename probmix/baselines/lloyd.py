"""Lloyd's algorithm on tensors: R restarts at once, in row blocks of bounded memory.

:func:`lloyd` runs Lloyd's algorithm from ``R`` sets of centres at once (one
``(R, K, D)`` tensor), following scikit-learn's ``KMeans(algorithm="lloyd")`` step for
step: the same centring of the data, the same empty-cluster relocation and the same
convergence rule. The private helpers (nearest-centre assignment, one step, the loop)
serve the :class:`~probmix.baselines.kmeans.KMeans` estimator, the streamed k-means of
:mod:`probmix.baselines.kmeans_streaming` and the EM initialisation. Where numba is
available the CPU steps run as fused loops (:mod:`probmix.baselines.fused`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from probmix._validation import check_int
from probmix.baselines import fused
from probmix.io.data import as_data, as_sample_weight

__all__ = ["lloyd", "first_argmin"]

# Elements of one (rows x centres) distance block: bounds the working memory of
# every pass over the data to a few MiB whatever the number of rows.
_BLOCK_ELEMENTS = 1 << 18


# ----------------------------------------------------------------------------- helpers


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a number >= 0; got {tol!r} ({type(tol).__name__}).")
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0; got {tol!r}. The default is 1e-4.")
    return float(tol)


def _rows_per_block(n_rows: int, width: int) -> int:
    """Rows per block so that a (rows x width) block holds about _BLOCK_ELEMENTS."""
    return max(1, min(n_rows, _BLOCK_ELEMENTS // max(1, width)))


def _as_points(x, name: str = "x") -> torch.Tensor:
    """Validate ``x``; a floating tensor keeps its device and dtype."""
    if isinstance(x, torch.Tensor) and x.dtype in (torch.float32, torch.float64):
        return as_data(x, name=name, dtype=x.dtype)
    return as_data(x, name=name)


def _centred_transpose(x: torch.Tensor, w: torch.Tensor | None):
    """Return (x - mean).T, shape (D, N), and the mean (D,).

    Subtracting the (weighted) mean before forming ||x||^2 - 2 x.c + ||c||^2
    avoids cancellation, as scikit-learn does. For the torch code the result is
    contiguous: the distance block is a (centres x rows) matrix whose reductions
    run along rows. Where the fused CPU kernels serve (:mod:`probmix.baselines.fused`), it is
    the transposed view of contiguous centred rows (N, D), the layout they read.
    """
    mean = x.mean(0) if w is None else (w @ x) / w.sum()  # (D,)
    if fused.enabled(x):
        return (x - mean).contiguous().T, mean
    return (x - mean).T.contiguous(), mean


def _fused_rows(xt: torch.Tensor) -> torch.Tensor | None:
    """The contiguous (N, D) rows behind ``xt`` when the fused kernels serve it, else None."""
    rows = xt.T
    return rows if rows.is_contiguous() and fused.enabled(rows) else None


def _absolute_tol(xt: torch.Tensor, w: torch.Tensor | None, tol: float) -> float:
    """tol times the mean per-feature variance of the data (scikit-learn's rule).

    ``xt`` is the centred data (D, N). With sample weights the variance is the
    frequency-weighted one, so that weights act as counts.
    """
    if tol == 0:
        return 0.0
    if w is None:
        var = xt.var(dim=1, correction=0)  # (D,)
    else:
        mu = (xt @ w) / w.sum()  # (D,)
        var = ((xt - mu[:, None]) ** 2 @ w) / w.sum()  # (D,)
    return float(var.mean()) * tol


def _assign(xt: torch.Tensor, centers: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Nearest centre of the rows ``start:stop`` for each restart.

    Parameters
    ----------
    xt : Tensor, shape (D, N)
        Centred data, transposed.
    centers : Tensor, shape (R, K, D)

    Returns
    -------
    Tensor, shape (R, stop - start), int64
        Index of the closest centre (the first one on ties).
    """
    r, k, d = centers.shape
    flat = centers.reshape(r * k, d)  # (RK, D)
    rows = xt[:, start:stop]
    big = float(flat.abs().max()) if flat.numel() else 0.0
    if big > 1e100:  # squares would overflow: rescale by a power of two (exact, same argmin)
        factor = 2.0 ** -math.ceil(math.log2(big))
        flat, rows = flat * factor, rows * factor
    sq = (flat * flat).sum(1, keepdim=True)  # (RK, 1)
    # ||x||^2 is the same for every centre, so it is left out of the argmin.
    dist = torch.addmm(sq, flat, rows, alpha=-2.0)  # (RK, b)
    return first_argmin(dist.view(r, k, stop - start))  # (R, b)


def first_argmin(dist: torch.Tensor) -> torch.Tensor:
    """Index of the first minimum along dim 1 of (R, K, b), shape (R, b), int64.

    Same as ``dist.min(dim=1).indices``, several times faster on the CPU: torch reduces
    over a short strided axis with indices slowly, but ``amin``/``amax`` over it run
    vectorised along the contiguous axis. The first minimum gets the largest rank K - k.
    """
    k = dist.shape[1]
    rank_dtype = torch.int16 if k < 2**15 else torch.int32
    rank = torch.arange(k, 0, -1, dtype=rank_dtype, device=dist.device)[:, None]  # K..1
    hit = dist == dist.amin(1, keepdim=True)  # (R, K, b)
    return (k - (hit * rank).amax(1)).long().clamp_(max=k - 1)  # (NaN rows: last centre)


def _labels_and_inertia(xt, w, centers):
    """Labels (R, N) and inertia (R,) of every restart for fixed centres.

    The inertia is summed from the exact squared distances (x - c)^2, not from
    the expanded form, so it carries no cancellation error.
    """
    r, k, d = centers.shape
    n = xt.shape[1]
    rows = _fused_rows(xt)
    if rows is not None and _fits_squares(centers):
        return fused.assign(rows, w, centers)
    labels = torch.empty(r, n, dtype=torch.long, device=xt.device)
    inertia = torch.zeros(r, dtype=xt.dtype, device=xt.device)
    flat = centers.reshape(r * k, d)  # (RK, D)
    offsets = torch.arange(r, device=xt.device)[:, None] * k  # (R, 1)
    step = _rows_per_block(n, r * max(k, d))
    for start in range(0, n, step):
        stop = min(n, start + step)
        lab = _assign(xt, centers, start, stop)  # (R, b)
        labels[:, start:stop] = lab
        diff = xt[:, start:stop].T.unsqueeze(0) - flat[lab + offsets]  # (R, b, D)
        sq = (diff * diff).sum(-1)  # (R, b)
        inertia += sq.sum(1) if w is None else sq @ w[start:stop]
    return labels, inertia


def _relocate_empty(xt, w, centers_old, labels, sums, wsum):
    """Move each empty cluster onto one of the points farthest from their centre.

    scikit-learn's rule: the j-th empty cluster of a restart takes the j-th
    farthest point (distance to its own centre); the point's weight leaves its
    old cluster. Zero-weight rows are never chosen (they count as absent).
    Works in place on ``sums`` (R, K, D) and ``wsum`` (R, K).
    """
    empty = wsum == 0  # (R, K)
    rows = empty.any(1).nonzero().flatten()  # restarts with an empty cluster
    if rows.numel() == 0:
        return
    n = xt.shape[1]
    far_dist = torch.empty(rows.numel(), n, dtype=xt.dtype, device=xt.device)  # (S, N)
    step = _rows_per_block(n, rows.numel() * xt.shape[0])
    for start in range(0, n, step):
        stop = min(n, start + step)
        own = centers_old[rows[:, None], labels[rows, start:stop]]  # (S, b, D)
        diff = xt[:, start:stop].T.unsqueeze(0) - own
        far_dist[:, start:stop] = (diff * diff).sum(-1)
    if w is not None:
        far_dist[:, w == 0] = -1.0
    n_empty = empty[rows].sum(1)  # (S,)
    top = min(int(n_empty.max()), n)
    far_val, far_idx = far_dist.topk(top, dim=1)  # (S, top), farthest first
    # Empty cluster ids in increasing order come first when sorting on "non-empty".
    empty_ids = torch.sort((~empty[rows]).to(torch.uint8), dim=1, stable=True).indices[:, :top]
    slot = torch.arange(top, device=xt.device)[None, :]  # (1, top)
    # A restart whose points all sit on their centres has nothing to relocate.
    valid = (slot < n_empty[:, None]) & (far_val[:, :1] > 0) & (far_val >= 0)  # (S, top)
    restart = rows[:, None].expand(-1, top)[valid]  # (M,)
    new = empty_ids[valid]  # (M,)
    far = far_idx[valid]  # (M,)
    old = labels[restart, far]  # (M,)
    wf = torch.ones_like(far, dtype=xt.dtype) if w is None else w[far]  # (M,)
    xf = xt[:, far].T * wf[:, None]  # (M, D)
    sums[restart, new] = xf
    wsum[restart, new] = wf
    sums.index_put_((restart, old), -xf, accumulate=True)
    wsum.index_put_((restart, old), -wf, accumulate=True)


def _lloyd_step(xt, w, centers, labels):
    """One Lloyd iteration for every restart.

    Parameters
    ----------
    xt : Tensor, shape (D, N)
        Centred data.
    w : Tensor, shape (N,), or None
    centers : Tensor, shape (R, K, D)
        Current centres.
    labels : Tensor, shape (R, N)
        Labels of the previous iteration; overwritten with the new ones.

    Returns
    -------
    new_centers : Tensor, shape (R, K, D)
    changed : Tensor, shape (R,), bool
        Whether any label changed.
    """
    r, k, d = centers.shape
    n = xt.shape[1]
    rows = _fused_rows(xt)
    if rows is not None and _fits_squares(centers):
        sums, wsum, changed = fused.lloyd_pass(rows, w, centers, labels)
        return _finish_step(xt, w, centers, labels, sums, wsum), changed
    sums_t = torch.zeros(d, r * k, dtype=xt.dtype, device=xt.device)  # (D, RK)
    wsum = torch.zeros(r * k, dtype=xt.dtype, device=xt.device)  # (RK,)
    changed = torch.zeros(r, dtype=torch.bool, device=xt.device)  # (R,)
    offsets = torch.arange(r, device=xt.device)[:, None] * k  # (R, 1)
    step = _rows_per_block(n, r * k)
    for start in range(0, n, step):
        stop = min(n, start + step)
        lab = _assign(xt, centers, start, stop)  # (R, b)
        changed |= (lab != labels[:, start:stop]).any(1)
        labels[:, start:stop] = lab
        idx = (lab + offsets).reshape(-1)  # (R b,), index into the flattened (R K)
        src = xt[:, start:stop] if w is None else xt[:, start:stop] * w[start:stop]  # (D, b)
        if r > 1:
            src = src.unsqueeze(1).expand(d, r, stop - start).reshape(d, -1)  # (D, R b)
        sums_t.index_add_(1, idx, src)
        if w is None:
            wsum += torch.bincount(idx, minlength=r * k).to(xt.dtype)
        else:
            wsum.index_add_(0, idx, w[start:stop].repeat(r))
    sums = sums_t.T.reshape(r, k, d)  # (R, K, D)
    wsum = wsum.view(r, k)  # (R, K)
    return _finish_step(xt, w, centers, labels, sums, wsum), changed


def _fits_squares(centers: torch.Tensor) -> bool:
    """Whether squared distances to ``centers`` stay finite (else _assign rescales)."""
    return centers.numel() == 0 or float(centers.abs().max()) <= 1e100


def _finish_step(xt, w, centers, labels, sums, wsum):
    """New centres (R, K, D) from the sums (R, K, D) and weights (R, K) of a Lloyd step.

    Empty clusters are relocated first (in place on ``sums`` and ``wsum``).
    """
    r = centers.shape[0]
    _relocate_empty(xt, w, centers, labels, sums, wsum)
    filled = wsum > 0  # (R, K)
    new_centers = sums / torch.where(filled, wsum, 1.0)[..., None]  # (R, K, D)
    # An empty cluster (only when points are duplicated) sits on the heaviest one.
    if not bool(filled.all()):
        heaviest = new_centers[torch.arange(r, device=xt.device), wsum.argmax(1)]  # (R, D)
        new_centers = torch.where(filled[..., None], new_centers, heaviest[:, None, :])
    return new_centers


def _lloyd(xt, w, centers, *, max_iter: int, tol: float):
    """Batched Lloyd on centred, transposed data; per-restart bookkeeping.

    Restarts that have converged are frozen and drop out of the batch.

    Returns
    -------
    labels : (R, N) int64, centers : (R, K, D), inertia : (R,),
    n_iter : (R,) int64, converged : (R,) bool
    """
    r = centers.shape[0]
    n = xt.shape[1]
    device = xt.device
    tol_abs = _absolute_tol(xt, w, tol)
    final = centers.clone()  # (R, K, D)
    n_iter = torch.full((r,), max_iter, dtype=torch.long, device=device)
    converged = torch.zeros(r, dtype=torch.bool, device=device)
    active = torch.arange(r, device=device)  # restarts still iterating
    cur = centers.clone()  # (A, K, D)
    labels = torch.full((r, n), -1, dtype=torch.long, device=device)  # (A, N)
    for i in range(max_iter):
        new, changed = _lloyd_step(xt, w, cur, labels)
        shift = ((new - cur) ** 2).sum((1, 2))  # (A,) squared centre shift
        done = ~changed | (shift <= tol_abs)  # (A,)
        cur = new
        if bool(done.any()):
            finished = active[done]
            final[finished] = cur[done]
            n_iter[finished] = i + 1
            converged[finished] = True
            keep = ~done
            active, cur, labels = active[keep], cur[keep], labels[keep]
            if active.numel() == 0:
                break
    if active.numel():
        final[active] = cur
    # One more E-step so that the labels and inertia belong to the returned centres.
    labels, inertia = _labels_and_inertia(xt, w, final)
    return labels, final, inertia, n_iter, converged


def _check_centers(centers, x: torch.Tensor, name: str) -> torch.Tensor:
    """Validate initial centres: (K, D) or (R, K, D) with D = x.shape[1]."""
    if isinstance(centers, torch.Tensor):
        c = centers.detach().to(device=x.device, dtype=x.dtype)
    else:
        try:
            c = torch.as_tensor(np.asarray(centers, dtype=np.float64), dtype=x.dtype,
                                device=x.device)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be an array of numbers of shape (n_clusters, "
                            f"n_features); got {type(centers).__name__} ({err}).") from None
    d = x.shape[1]
    shape = tuple(c.shape)
    if c.ndim == 2:
        c = c.unsqueeze(0)
    if c.ndim != 3 or c.shape[-1] != d or c.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape (n_clusters, {d}) or (n_init, n_clusters, {d}) to match "
            f"x's {d} feature(s); got shape {shape}. Pass one row per cluster with one "
            "column per feature of x."
        )
    if not bool(torch.isfinite(c).all()):
        raise ValueError(f"{name} contains NaN or infinite values; pass finite centres.")
    return c.contiguous()


# ----------------------------------------------------------------------------- public function


def lloyd(x, centers, *, sample_weight=None, max_iter: int = 300, tol: float = 1e-4):
    """Run Lloyd's algorithm from ``R`` sets of initial centres at once.

    Each iteration assigns every point to its nearest centre (squared
    distances from ``||x||^2 - 2 x.c + ||c||^2`` in row blocks of bounded
    memory), then moves each centre to the weighted mean of its points
    (scatter-add). Empty clusters are re-seeded from the points farthest from
    their centres. A restart stops when no label changes or when the squared
    centre shift summed over clusters is at most ``tol`` times the mean
    per-feature variance of ``x``; stopped restarts freeze while the others go on.

    Parameters
    ----------
    x : array-like, shape (N, D)
        Points. A floating tensor keeps its device and dtype.
    centers : array-like, shape (R, K, D) or (K, D)
        Initial centres of the R restarts (a (K, D) array is one restart).
    sample_weight : array-like, shape (N,), optional
        Non-negative weights acting as counts.
    max_iter : int, default 300
        Most iterations per restart.
    tol : float, default 1e-4
        Relative tolerance on the centre shift (scikit-learn's definition).

    Returns
    -------
    labels : Tensor, shape (R, N), int64
        Nearest final centre of each point.
    centers : Tensor, shape (R, K, D)
        Final centres.
    inertia : Tensor, shape (R,)
        Weighted sum of squared distances of the points to their centre.
    n_iter : int
        Iterations run by the slowest restart.
    converged : bool
        Whether every restart met the tolerance before ``max_iter``. No warning
        is raised here; callers decide.
    """
    x = _as_points(x)
    c = _check_centers(centers, x, "centers")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = _check_tol(tol)
    w = as_sample_weight(sample_weight, x.shape[0], device=x.device, dtype=x.dtype)
    xt, mean = _centred_transpose(x, w)
    labels, out, inertia, n_iter, converged = _lloyd(xt, w, c - mean, max_iter=max_iter, tol=tol)
    return labels, out + mean, inertia, int(n_iter.max()), bool(converged.all())
