"""Initial centres for k-means: greedy k-means++ (R seedings at once) and weighted random rows."""

from __future__ import annotations

import math

import torch

from probmix._validation import check_int
from probmix.baselines import fused
from probmix.baselines.lloyd import _as_points, _rows_per_block
from probmix.io.data import as_sample_weight

__all__ = ["kmeans_plusplus"]

_KPP_KEEP_BYTES = 1 << 30  # k-means++ keeps every candidate's distances (R, T, N) up to this


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
