"""k-means over data that is not in memory: Lloyd over streamed chunks, and mini-batch k-means.

Lloyd's algorithm needs per-centre counts and sums (and the inertia), which are
sums over rows: :func:`streamed_lloyd` accumulates them chunk by chunk and
all-reduces them across processes (:mod:`probmix.infer.distributed`), so a streamed
or distributed fit takes the same steps as :func:`probmix.baselines.lloyd.lloyd` in
memory. Empty clusters are moved onto the farthest rows, found in the same
pass. :class:`MiniBatchKMeans` updates the centres after every mini-batch with
per-centre step sizes 1 / count (Sculley, 2010), as scikit-learn's
MiniBatchKMeans does.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from probmix._random import generator
from probmix._validation import check_int
from probmix.io.data import as_data, check_n_features, check_squares_finite
from probmix.infer.distributed import LocalReducer
from probmix.exceptions import ConvergenceWarning
from probmix.baselines.kmeans_init import kmeans_plusplus
from probmix.baselines.lloyd import _assign, _check_centers, _check_tol
from probmix.io.scan import scan
from probmix.io.sources import as_source, is_source

__all__ = ["streamed_lloyd", "MiniBatchKMeans"]


def _chunk_step(xt, centers, sums_t, wsum, inertia, far, count):
    """Add one centred chunk ``xt`` (D, n) to the sums; keep the ``count`` farthest rows.

    ``far`` is (dist (R, m), rows (R, m, D), labels (R, m)) or None.
    """
    r, k, d = centers.shape
    n = xt.shape[1]
    lab = _assign(xt, centers, 0, n)  # (R, n)
    offsets = torch.arange(r, device=xt.device)[:, None] * k
    idx = (lab + offsets).reshape(-1)
    src = xt.unsqueeze(1).expand(d, r, n).reshape(d, -1) if r > 1 else xt
    sums_t.index_add_(1, idx, src)
    wsum += torch.bincount(idx, minlength=r * k).to(xt.dtype)
    diff = xt.T.unsqueeze(0) - centers.reshape(r * k, d)[lab + offsets]  # (R, n, D)
    sq = (diff * diff).sum(-1)  # (R, n)
    inertia += sq.sum(1)
    rows = xt.T.expand(r, n, d)
    if far is not None:
        sq = torch.cat([far[0], sq], 1)
        rows = torch.cat([far[1], rows], 1)
        lab = torch.cat([far[2], lab], 1)
    top, pos = sq.topk(min(count, sq.shape[1]), dim=1)
    return top, rows.gather(1, pos[..., None].expand(-1, -1, d)), lab.gather(1, pos)


def _gather_far(far, reducer, count):
    """The ``count`` farthest rows over all processes."""
    if not reducer.distributed:
        return far
    dist_, rows, lab = far
    r, m, d = rows.shape
    pad = count - m
    dist_ = torch.cat([dist_, dist_.new_full((r, pad), -1.0)], 1)
    rows = torch.cat([rows, rows.new_zeros(r, pad, d)], 1)
    lab = torch.cat([lab, lab.new_zeros(r, pad)], 1)
    dist_ = reducer.gather(dist_).permute(1, 0, 2).reshape(r, -1)
    rows = reducer.gather(rows).permute(1, 0, 2, 3).reshape(r, -1, d)
    lab = reducer.gather(lab).permute(1, 0, 2).reshape(r, -1)
    top, pos = dist_.topk(count, dim=1)
    return top, rows.gather(1, pos[..., None].expand(-1, -1, d)), lab.gather(1, pos)


def _pass(open_chunks, mean, centers, reducer):
    """One pass: summed (R, K, D) sums, (R, K) counts, (R,) inertia and the farthest rows."""
    r, k, d = centers.shape
    sums_t = centers.new_zeros(d, r * k)
    wsum = centers.new_zeros(r * k)
    inertia = centers.new_zeros(r)
    far = None
    for x in open_chunks():
        far = _chunk_step((x - mean).T.contiguous(), centers, sums_t, wsum, inertia, far, k)
    reducer.sum_(sums_t)
    reducer.sum_(wsum)
    reducer.sum_(inertia)
    if far is None:  # this process holds no rows
        far = (centers.new_full((r, 0), -1.0), centers.new_zeros(r, 0, d),
               torch.zeros(r, 0, dtype=torch.long, device=centers.device))
    return sums_t.T.reshape(r, k, d), wsum.view(r, k), inertia, _gather_far(far, reducer, k)


def streamed_lloyd(open_chunks, centers, *, mean, tol_abs: float, max_iter: int, reducer=None):
    """Lloyd's algorithm over chunks, for R restarts at once.

    Parameters
    ----------
    open_chunks : callable
        ``open_chunks()`` iterates once over this process's rows: tensors (n_i, D).
    centers : Tensor (R, K, D)
        Initial centres, in the units of the data.
    mean : Tensor (D,)
        The data's mean (distances are computed on centred rows, as in memory).
    tol_abs : float
        Stop when the squared centre shift summed over clusters is at most this.
    max_iter : int
    reducer : LocalReducer or ProcessGroupReducer

    Returns
    -------
    centers (R, K, D), inertia (R,), n_iter (R,) int64, converged (R,) bool
    """
    reducer = LocalReducer() if reducer is None else reducer
    cur = centers - mean
    r, k, _ = cur.shape
    n_iter = torch.full((r,), max_iter, dtype=torch.long)
    converged = torch.zeros(r, dtype=torch.bool)
    for i in range(max_iter):
        sums, wsum, _, (far_d, far_x, far_lab) = _pass(open_chunks, mean, cur, reducer)
        for j in range(r):  # relocation is rare and per restart: move empty clusters
            empty = (wsum[j] == 0).nonzero().flatten()
            for slot, c in enumerate(empty.tolist()):
                if slot >= far_d.shape[1] or float(far_d[j, slot]) <= 0:
                    break
                old = int(far_lab[j, slot])
                sums[j, c], wsum[j, c] = far_x[j, slot], 1.0
                sums[j, old] -= far_x[j, slot]
                wsum[j, old] -= 1.0
        filled = wsum > 0
        new = torch.where(filled[..., None], sums / torch.where(filled, wsum, 1.0)[..., None], cur)
        shift = ((new - cur) ** 2).sum((1, 2))
        done = (shift <= tol_abs) & ~converged
        n_iter[done] = i + 1
        converged |= done
        cur = torch.where(converged[:, None, None] & ~done[:, None, None], cur, new)
        if bool(converged.all()):
            break
    inertia = _pass(open_chunks, mean, cur, reducer)[2]
    return cur + mean, inertia, n_iter, converged


class MiniBatchKMeans:
    """k-means by mini-batch updates: one pass over a stream per epoch, memory O(batch).

    Parameters
    ----------
    n_clusters : int
    batch_size : int, default 1024
        Rows per update.
    max_epochs : int, default 10
        Passes over the data (a one-shot iterator allows one).
    init : {"k-means++", "random"} or array-like (K, D)
        Seeding on ``init_size`` rows: a uniform sample drawn in a first pass when the source
        can be read again, else the first rows of the stream.
    init_size : int, default 3 * batch_size (at least 3 K)
    tol : float, default 0.0
        Stop after an epoch whose summed squared centre shift is at most ``tol`` times the mean
        per-feature variance of the initial rows (0: run every epoch).
    seed : int
    device, dtype

    Attributes
    ----------
    cluster_centers_ : ndarray (K, D)
    counts_ : ndarray (K,)  rows each centre has absorbed
    inertia_ : float  of the last epoch, summed over its batches before their updates (an
        estimate that lags the final centres)
    n_steps_ : int
    """

    def __init__(self, n_clusters: int, *, batch_size: int = 1024, max_epochs: int = 10,
                 init="k-means++", init_size: int | None = None, tol: float = 0.0, seed: int = 0,
                 device=None, dtype=None):
        self.n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.max_epochs = check_int(max_epochs, "max_epochs", minimum=1)
        if init_size is not None:
            init_size = check_int(init_size, "init_size", minimum=n_clusters)
        self.init, self.init_size, self.tol = init, init_size, _check_tol(tol)
        self.seed = check_int(seed, "seed", minimum=0)
        self.device, self.dtype = device, dtype

    def _start(self, head: torch.Tensor):
        k = self.n_clusters
        check_squares_finite(head, large=False)  # squared distances must not underflow
        if head.shape[0] < k:
            raise ValueError(f"the first rows of the data hold {head.shape[0]} rows, fewer than "
                             f"n_clusters={k}; pass more data or a larger init_size.")
        if isinstance(self.init, str):
            if self.init not in ("k-means++", "random"):
                raise ValueError(f"init must be 'k-means++', 'random' or an array of centres; "
                                 f"got {self.init!r}.")
            gen = generator(self.seed, head.device)
            if self.init == "k-means++":
                centers = kmeans_plusplus(head, k, generator=gen)[0]
            else:
                centers = head[torch.randperm(head.shape[0], generator=gen,
                                              device=head.device)[:k]]
        else:
            centers = _check_centers(self.init, head, "init")[0]
            if centers.shape[0] != k:
                raise ValueError(f"init has {centers.shape[0]} centre(s) but n_clusters={k}; "
                                 f"pass an array of shape ({k}, {head.shape[1]}).")
        self._centers = centers.clone()
        self._counts = torch.zeros(k, dtype=head.dtype, device=head.device)
        self._n_features = head.shape[1]
        var = head.var(0, correction=0).mean()
        self._tol_abs = float(var) * self.tol
        self.n_steps_ = 0

    def partial_fit(self, x):
        """Update the centres with one mini-batch ``x`` (n, D); returns self."""
        x = as_data(x, name="x", device=self.device, dtype=self.dtype)
        if not hasattr(self, "_centers"):
            self._start(x)
        check_n_features(x, self._n_features)
        self._batch_inertia = self._update(x)
        self._store()
        return self

    def _update(self, x) -> float:
        c = self._centers
        lab = _assign(x.T.contiguous(), c[None], 0, x.shape[0])[0]  # (n,)
        inertia = float(((x - c[lab]) ** 2).sum())
        counts = torch.bincount(lab, minlength=self.n_clusters).to(x.dtype)
        sums = torch.zeros_like(c).index_add_(0, lab, x)
        total = self._counts + counts
        hit = counts > 0
        # c ← (c · n_old + Σ x) / (n_old + n): per-centre step size counts / total
        self._centers = torch.where(hit[:, None], (c * self._counts[:, None] + sums)
                                    / torch.where(hit, total, 1.0)[:, None], c)
        self._counts = total
        self.n_steps_ += 1
        return inertia

    def fit(self, x):
        """Fit on an array or a streaming source (see :func:`probmix.io.sources.as_source`)."""
        if not is_source(x):  # a DataFrame, a list of rows, ...: in memory
            x = as_data(x, name="x", device=self.device, dtype=self.dtype)
        source = as_source(x, chunk_size=self.batch_size, device=self.device, dtype=self.dtype)
        order = generator(self.seed + 1, "cpu")  # the order of the batches, epoch by epoch
        for attr in ("_centers", "_counts"):
            self.__dict__.pop(attr, None)
        size = self.init_size or max(3 * self.batch_size, 3 * self.n_clusters)
        head, stream = [], source.chunks()
        if source.reiterable:  # seed on a uniform sample: streams are often ordered
            self._start(scan(stream, sample_size=size, seed=self.seed).sample)
            stream = source.chunks()
        else:
            for chunk in stream:
                head.append(chunk)
                if sum(h.shape[0] for h in head) >= size:
                    break
            if not head:
                raise ValueError("x holds no rows; pass at least n_clusters rows.")
            self._start(torch.cat(head))
        self.converged_ = False
        for epoch in range(self.max_epochs):
            before = self._centers.clone()
            # batches in a random order where the source allows it: rows stored grouped by
            # cluster (a sorted file) would otherwise drag the centres through one cluster at
            # a time, and the running means never forget it
            chunks = source.shuffled_chunks(order) if source.reiterable else None
            if chunks is None:
                chunks = (c for part in (head, stream) for c in part) if epoch == 0 \
                    else source.chunks()
            self.inertia_ = sum(self._update(c) for c in chunks)
            self.n_epochs_ = epoch + 1
            if self.tol > 0 and float(((self._centers - before) ** 2).sum()) <= self._tol_abs:
                self.converged_ = True
                break
        if self.tol > 0 and not self.converged_:
            warnings.warn(f"MiniBatchKMeans did not converge in max_epochs={self.max_epochs}; "
                          "increase max_epochs or tol.", ConvergenceWarning, stacklevel=2)
        self._store()
        return self

    def _store(self):
        self.cluster_centers_ = self._centers.cpu().numpy()
        self.counts_ = self._counts.cpu().numpy()

    def predict(self, x) -> np.ndarray:
        """Index of the nearest centre of each row, shape (N,)."""
        if not hasattr(self, "_centers"):
            raise RuntimeError("This MiniBatchKMeans instance is not fitted yet; call .fit(x) "
                               "or .partial_fit(x) first.")
        x = as_data(x, name="x", device=self._centers.device, dtype=self._centers.dtype)
        check_n_features(x, self._n_features)
        return _assign(x.T.contiguous(), self._centers[None], 0, x.shape[0])[0].cpu().numpy()

    def __repr__(self) -> str:
        return f"MiniBatchKMeans(n_clusters={self.n_clusters}, batch_size={self.batch_size})"
