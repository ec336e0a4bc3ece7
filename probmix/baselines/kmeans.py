"""KMeans: batched Lloyd iterations on tensors, seeded by greedy k-means++.

Two module-level functions do the numerical work and are what other engines
call (the MAP engine initialises EM from them):

* :func:`kmeans_plusplus` draws ``R`` independent k-means++ seedings at once;
* :func:`lloyd` runs Lloyd's algorithm from ``R`` sets of centres at once.

Both work on one ``(R, K, D)`` tensor of centres, so ``n_init`` restarts cost
one batched computation rather than ``n_init`` sequential ones. The
:class:`KMeans` estimator validates input, draws the initial centres, calls
:func:`lloyd` and keeps the restart with the lowest inertia.

The algorithm follows scikit-learn's ``KMeans(algorithm="lloyd")`` step for
step (same centring of the data, same empty-cluster relocation, same
convergence rule), so from the same initial centres both give the same
labels, centres and inertia. Sample weights act as counts: an integer weight
``w`` is the row repeated ``w`` times, a zero weight is the row dropped.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch

from probmix.baselines import fused
from probmix.io import persistence
from probmix.io.data import as_data, as_sample_weight, check_n_features
from probmix.exceptions import ConvergenceWarning
from probmix._validation import check_int, check_seed
from probmix._random import generator

__all__ = ["KMeans", "kmeans_plusplus", "lloyd"]

# Elements of one (rows x centres) distance block: bounds the working memory of
# every pass over the data to a few MiB whatever the number of rows.
_BLOCK_ELEMENTS = 1 << 18
_KPP_KEEP_BYTES = 1 << 30  # k-means++ keeps every candidate's distances (R, T, N) up to this


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


# ----------------------------------------------------------------------------- public functions


def kmeans_plusplus(x, n_clusters: int, *, n_init: int = 1, sample_weight=None,
                    generator: torch.Generator, n_local_trials: int | None = None) -> torch.Tensor:
    """Draw ``n_init`` independent greedy k-means++ seedings at once.

    The first centre is a row drawn with probability proportional to its
    weight; each next one is the best of ``n_local_trials`` candidates drawn
    with probability proportional to weight times squared distance to the
    closest centre so far, "best" meaning the lowest resulting potential
    (scikit-learn's greedy k-means++).

    Parameters
    ----------
    x : array-like, shape (N, D)
        Points. A floating tensor keeps its device and dtype.
    n_clusters : int
        Number of centres K to draw.
    n_init : int, default 1
        Number of independent draws R.
    sample_weight : array-like, shape (N,), optional
        Non-negative weights acting as counts; rows of weight 0 are never chosen.
    generator : torch.Generator
        Source of randomness, on the device of ``x``.
    n_local_trials : int, optional
        Candidates per centre; default ``2 + int(log(K))``.

    Returns
    -------
    Tensor, shape (R, K, D)
        Initial centres, rows of ``x``.
    """
    x = _as_points(x)
    n, d = x.shape
    k = check_int(n_clusters, "n_clusters", minimum=1)
    r = check_int(n_init, "n_init", minimum=1)
    trials = 2 + int(math.log(k)) if n_local_trials is None else check_int(
        n_local_trials, "n_local_trials", minimum=1)
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator, e.g. "
                        f"torch.Generator(device=x.device).manual_seed(0); got {generator!r}.")
    w = as_sample_weight(sample_weight, n, device=x.device, dtype=x.dtype)
    w = torch.ones(n, dtype=x.dtype, device=x.device) if w is None else w
    xc = x - (w @ x) / w.sum()  # (N, D) centred
    xsq = (xc * xc).sum(1)  # (N,)
    dev, dt = x.device, x.dtype

    def draw(cum: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        # Inverse CDF on the cumulative mass (R, N); side="right" never lands on a
        # row of zero mass, and the clamp guards u == total after rounding.
        last = (cum < cum[:, -1:]).sum(1, keepdim=True)  # (R, 1) first row reaching the total
        return torch.minimum(torch.searchsorted(cum, u.contiguous(), right=True), last)

    def sq_dist(c: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        # c (..., D) against rows start:stop -> (..., b)
        csq = (c * c).sum(-1, keepdim=True)
        return (csq - 2.0 * c @ xc[start:stop].T + xsq[start:stop]).clamp_min_(0.0)

    chosen = torch.empty(r, k, dtype=torch.long, device=dev)  # (R, K)
    cum = torch.cumsum(w, 0).expand(r, n).contiguous()  # (R, N)
    chosen[:, 0] = draw(cum, torch.rand(r, 1, generator=generator, device=dev, dtype=dt)
                        * cum[:, -1:])[:, 0]
    if fused.enabled(xc):  # one fused pass over the rows per centre, as scikit-learn's
        closest = torch.full((r, n), math.inf, dtype=dt)
        fused.kmeanspp_potential(xc, xsq, w, closest, xc[chosen[:, :1]],
                                 out=closest.view(r, 1, n))
        # every candidate's lowered distances, kept so the winner's need no second pass
        keep = r * trials * n * xc.element_size() <= _KPP_KEEP_BYTES
        lowered = torch.empty(r, trials, n, dtype=dt) if keep else None
        rows = torch.arange(r)
        for c in range(1, k):
            cum = torch.cumsum(closest * w, dim=1)  # (R, N)
            u = torch.rand(r, trials, generator=generator, device=dev, dtype=dt) * cum[:, -1:]
            cand = draw(cum, u)  # (R, T)
            pot = fused.kmeanspp_potential(xc, xsq, w, closest, xc[cand], out=lowered)
            win = pot.argmin(1)  # (R,)
            chosen[:, c] = cand[rows, win]
            if keep:
                closest.copy_(lowered[rows, win])
            else:
                fused.kmeanspp_potential(xc, xsq, w, closest, xc[chosen[:, c:c + 1]],
                                         out=closest.view(r, 1, n))
        return x[chosen]  # (R, K, D)
    closest = torch.empty(r, n, dtype=dt, device=dev)  # (R, N) squared distance to nearest centre
    step = _rows_per_block(n, r * trials)
    for start in range(0, n, step):
        stop = min(n, start + step)
        closest[:, start:stop] = sq_dist(xc[chosen[:, 0]], start, stop)
    for c in range(1, k):
        cum = torch.cumsum(closest * w, dim=1)  # (R, N)
        u = torch.rand(r, trials, generator=generator, device=dev, dtype=dt) * cum[:, -1:]
        cand = draw(cum, u)  # (R, T)
        cand_x = xc[cand]  # (R, T, D)
        pot = torch.zeros(r, trials, dtype=dt, device=dev)  # (R, T)
        for start in range(0, n, step):
            stop = min(n, start + step)
            dist = torch.minimum(sq_dist(cand_x, start, stop),
                                 closest[:, None, start:stop])  # (R, T, b)
            pot += dist @ w[start:stop]
        best = cand.gather(1, pot.argmin(1, keepdim=True))[:, 0]  # (R,)
        chosen[:, c] = best
        best_x = xc[best]  # (R, D)
        for start in range(0, n, step):
            stop = min(n, start + step)
            torch.minimum(closest[:, start:stop], sq_dist(best_x[:, None, :], start, stop)[:, 0],
                          out=closest[:, start:stop])
    return x[chosen]  # (R, K, D)


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


def _random_init(x, k, r, w, generator):
    """R draws of K distinct rows, with probability proportional to weight."""
    n = x.shape[0]
    n_pos = n if w is None else int((w > 0).sum())
    if n_pos < k:
        raise ValueError(
            f"init='random' needs n_clusters={k} distinct rows of positive weight; only "
            f"{n_pos} have sample_weight > 0. Use fewer clusters or init='k-means++'."
        )
    u = torch.rand(r, n, generator=generator, device=x.device, dtype=x.dtype)  # (R, N)
    # Efraimidis-Spirakis keys: the top-K of u^(1/w) is a weighted draw without replacement.
    keys = u.log_() if w is None else u.log_() / w
    return x[keys.topk(k, dim=1).indices]  # (R, K, D)


# ----------------------------------------------------------------------------- estimator


@persistence.register("KMeans")
class KMeans(persistence.AttributeState):
    """K-means clustering by batched Lloyd iterations.

    Parameters
    ----------
    n_clusters : int
        Number of clusters K (at least 1, at most the number of samples).
    init : {"k-means++", "random"} or array-like, shape (K, D) or (R, K, D)
        "k-means++": greedy k-means++ seeding; "random": K distinct rows drawn
        in proportion to their weight; an array: the initial centres themselves
        (one set per restart if 3-D).
    n_init : int or "auto", default "auto"
        Number of restarts, run together as one batch; the one with the lowest
        inertia is kept. "auto" is 1 for "k-means++" and an array, 10 for "random".
    max_iter : int, default 300
        Most Lloyd iterations per restart.
    tol : float, default 1e-4
        Relative tolerance: a restart stops when the squared centre shift is at
        most ``tol`` times the mean per-feature variance of the data.
    seed : int, optional
        Seed of the random initialisation; None draws a fresh one.
    device : str or torch.device, optional
        Where to compute; default the device of ``x`` (CPU for arrays).
    dtype : torch.float32 or torch.float64, optional
        Default float64 on the CPU, float32 on a GPU.

    Attributes
    ----------
    cluster_centers_ : ndarray, shape (K, D)
    labels_ : ndarray, shape (N,), int64
    inertia_ : float
        Weighted sum of squared distances of the points to their centre.
    n_iter_ : int
        Iterations run by the kept restart.
    converged_ : bool
        Whether the kept restart met the tolerance before ``max_iter``.

    Examples
    --------
    >>> km = KMeans(3, n_init=10, seed=0).fit(x)          # doctest: +SKIP
    >>> km.labels_, km.cluster_centers_, km.inertia_      # doctest: +SKIP
    """

    def __init__(self, n_clusters, *, init="k-means++", n_init="auto", max_iter=300, tol=1e-4,
                 seed=None, device=None, dtype=None):
        self.n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
        if isinstance(init, str):
            if init not in ("k-means++", "random"):
                raise ValueError(f"init must be 'k-means++', 'random' or an array of initial "
                                 f"centres; got {init!r}.")
        elif init is None:
            raise TypeError("init must be 'k-means++', 'random' or an array of initial centres "
                            "of shape (n_clusters, n_features); got None.")
        self.init = init
        if n_init != "auto":
            n_init = check_int(n_init, "n_init", minimum=1)
        self.n_init = n_init
        self.max_iter = check_int(max_iter, "max_iter", minimum=1)
        self.tol = _check_tol(tol)
        self.seed = check_seed(seed)
        self.device = device
        self.dtype = dtype

    # -- fitting

    def fit(self, x, sample_weight=None, *, chunk_size=None, distributed=False,
            init_size: int = 100_000):
        """Cluster ``x``.

        Parameters
        ----------
        x : array-like, shape (N, D), or a streaming source
            A memory-mapped array, a .npy path, an HDF5 dataset, a list of arrays or a
            callable returning an iterator (:func:`probmix.io.sources.as_source`) is read chunk
            by chunk; ``labels_`` is then not stored (use :meth:`predict` chunk by chunk).
        sample_weight : array-like, shape (N,), optional
            Non-negative weights acting as counts (in-memory, single-process fits).
        chunk_size : int, optional
            Stream ``x`` in chunks of this many rows.
        distributed : bool or process group
            This process holds one shard of the rows of a ``torch.distributed`` job; counts,
            sums and inertia are all-reduced and every process ends with the same centres.
        init_size : int
            Streamed and distributed fits seed on a uniform random sample of this many rows
            (over all processes; k-means++ or random seeding on it).

        Returns
        -------
        self
        """
        from probmix.io.sources import is_source

        if chunk_size is not None or distributed or is_source(x):
            if sample_weight is not None:
                raise ValueError("sample_weight is supported for in-memory, single-process fits "
                                 "only; repeat rows instead.")
            self._fit_streamed(x, chunk_size=chunk_size, distributed=distributed,
                               init_size=init_size)
            return self
        self._fit(x, sample_weight, stacklevel=3)
        return self

    def _fit_streamed(self, x, *, chunk_size, distributed, init_size):
        from probmix.infer.distributed import reducer_for
        from probmix.infer.map.em_streaming import scan
        from probmix.baselines.kmeans_streaming import streamed_lloyd
        from probmix.io.sources import as_source, is_source

        reducer = reducer_for(distributed)
        shard = None  # the rows in memory, when they are, to store labels_
        if not is_source(x):
            x = shard = as_data(x, name="x", device=self.device, dtype=self.dtype)
        source = as_source(x, chunk_size=chunk_size or 65536, device=self.device,
                           dtype=self.dtype)
        k = self.n_clusters
        found = scan(source.chunks(), reducer=reducer, sample_size=max(init_size, k),
                     seed=self.seed)
        if found.n < k:
            raise ValueError(f"n_clusters={k} is larger than the number of rows ({found.n}); "
                             f"pass n_clusters <= {found.n} or more data.")
        sample = found.sample
        gen = generator(self.seed, sample.device)
        if isinstance(self.init, str):
            r = self.n_init if self.n_init != "auto" else (10 if self.init == "random" else 1)
            init = kmeans_plusplus(sample, k, n_init=r, generator=gen) \
                if self.init == "k-means++" else _random_init(sample, k, r, None, gen)
        else:
            init = _check_centers(self.init, sample, "init")
        # scikit-learn's rule: tol times the mean per-feature (biased) variance
        tol_abs = self.tol * float(torch.diagonal(found.cov).mean()) * (found.n - 1) / found.n
        centers, inertia, n_iter, converged = streamed_lloyd(
            source.chunks, init, mean=found.mean, tol_abs=tol_abs, max_iter=self.max_iter,
            reducer=reducer)
        best = int(inertia.argmin())
        self._mean = found.mean
        self._centers = centers[best] - found.mean
        self._n_features = sample.shape[1]
        self.cluster_centers_ = centers[best].cpu().numpy()
        self.inertia_ = float(inertia[best])
        self.n_iter_ = int(n_iter[best])
        self.converged_ = bool(converged[best])
        self.labels_ = None if shard is None else self.predict(shard)
        if not self.converged_:
            warnings.warn(f"KMeans did not converge in max_iter={self.max_iter} iterations "
                          f"(tol={self.tol}); increase max_iter or tol.",
                          ConvergenceWarning, stacklevel=3)

    def fit_predict(self, x, sample_weight=None) -> np.ndarray:
        """Cluster ``x`` and return ``labels_``, shape (N,)."""
        self._fit(x, sample_weight, stacklevel=3)
        return self.labels_

    def _fit(self, x, sample_weight, *, stacklevel: int):
        x = as_data(x, name="x", device=self.device, dtype=self.dtype)
        n, d = x.shape
        k = self.n_clusters
        if k > n:
            raise ValueError(f"n_clusters={k} is larger than the number of samples in x ({n}); "
                             f"pass n_clusters <= {n} or more data.")
        w = as_sample_weight(sample_weight, n, device=x.device, dtype=x.dtype)
        gen = generator(self.seed, x.device)
        if isinstance(self.init, str):
            r = self.n_init if self.n_init != "auto" else (10 if self.init == "random" else 1)
            if self.init == "k-means++":
                init = kmeans_plusplus(x, k, n_init=r, sample_weight=w, generator=gen)
            else:
                init = _random_init(x, k, r, w, gen)
        else:
            init = _check_centers(self.init, x, "init")
            if init.shape[1] != k:
                raise ValueError(f"init has {init.shape[1]} centre(s) but n_clusters={k}; pass "
                                 f"an array with n_clusters={k} rows.")
            if self.n_init not in ("auto", 1, init.shape[0]):
                warnings.warn(f"init is an array of {init.shape[0]} set(s) of centres, so "
                              f"n_init={self.n_init} is ignored; {init.shape[0]} restart(s) "
                              "will run. Pass n_init=1 to silence this.",
                              RuntimeWarning, stacklevel=stacklevel)
        xt, mean = _centred_transpose(x, w)
        labels, centers, inertia, n_iter, converged = _lloyd(
            xt, w, init - mean, max_iter=self.max_iter, tol=self.tol)
        best = int(inertia.argmin())
        self._mean = mean
        self._centers = centers[best]  # (K, D) centred
        self._n_features = d
        self.cluster_centers_ = (centers[best] + mean).cpu().numpy()
        self.labels_ = labels[best].cpu().numpy()
        self.inertia_ = float(inertia[best])
        self.n_iter_ = int(n_iter[best])
        self.converged_ = bool(converged[best])
        if not self.converged_:
            warnings.warn(f"KMeans did not converge in max_iter={self.max_iter} iterations "
                          f"(tol={self.tol}); increase max_iter or tol.",
                          ConvergenceWarning, stacklevel=stacklevel)
        distinct = int(np.unique(self.labels_).size)
        if distinct < k:
            warnings.warn(f"Only {distinct} distinct cluster(s) found for n_clusters={k}, "
                          "probably because x holds duplicate points; use fewer clusters.",
                          ConvergenceWarning, stacklevel=stacklevel)

    # -- using a fit

    def _fitted_input(self, x, method: str) -> torch.Tensor:
        if not hasattr(self, "_centers"):
            raise RuntimeError(f"This KMeans instance is not fitted yet; call .fit(x) before "
                               f".{method}(x).")
        x = as_data(x, name="x", device=self._centers.device, dtype=self._centers.dtype)
        check_n_features(x, self._n_features)
        return x

    def predict(self, x) -> np.ndarray:
        """Index of the nearest centre of each row of ``x``, shape (N,), int64."""
        x = self._fitted_input(x, "predict")
        centers = self._centers.unsqueeze(0)  # (1, K, D)
        if fused.enabled(x) and _fits_squares(centers):
            return fused.assign((x - self._mean).contiguous(), None, centers)[0][0].numpy()
        xt = (x - self._mean).T.contiguous()  # (D, N)
        n = xt.shape[1]
        step = _rows_per_block(n, self.n_clusters)
        out = [_assign(xt, centers, s, min(n, s + step))[0] for s in range(0, n, step)]
        return torch.cat(out).cpu().numpy()

    def transform(self, x) -> np.ndarray:
        """Euclidean distance of each row of ``x`` to each centre, shape (N, K)."""
        x = self._fitted_input(x, "transform") - self._mean
        step = _rows_per_block(x.shape[0], self.n_clusters * x.shape[1])
        out = [torch.cdist(x[s:s + step], self._centers,
                           compute_mode="donot_use_mm_for_euclid_dist")
               for s in range(0, x.shape[0], step)]
        return torch.cat(out).cpu().numpy()

    def __repr__(self) -> str:
        init = self.init if isinstance(self.init, str) else "array"
        return (f"KMeans(n_clusters={self.n_clusters}, init={init!r}, n_init={self.n_init!r}, "
                f"max_iter={self.max_iter}, tol={self.tol}, seed={self.seed})")

    # -- persistence

    def save(self, path) -> None:
        """Write the settings and fitted state to ``path`` (``.npz`` + JSON header, no pickle).

        See :mod:`probmix.io.persistence`; read it back with ``KMeans.load(path)``.
        """
        persistence.save(self, path)

    @classmethod
    def load(cls, path, *, device=None) -> "KMeans":
        """Read a KMeans written by :meth:`save` (nothing in the file is executed).

        ``device`` moves the fitted state (default: where it was saved).
        """
        return persistence.load_as(cls, path, device=device)
