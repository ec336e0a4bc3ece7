"""Fused CPU loops for the hot paths, compiled with numba; torch code is the fallback.

On the CPU a torch formulation of a Lloyd step is a chain of full passes over the
data: the distance product, a minimum, an equality, a rank, a scatter-add of the
rows and a count, each one memory-bound and some serial. The kernels here do the
same arithmetic in one pass (per block of rows: a small BLAS product, then the
reduction and accumulation while the block is in cache), which is what makes
probmix's KMeans faster than scikit-learn's on the CPU.

A kernel runs when :func:`enabled` says so: CPU tensor, float32 or float64,
numba importable, and either at least ``_MIN_ELEMENTS`` data values (rows ×
features; for mean shift rows × seeds) or the environment variable ``PROBMIX_FUSED=1``; ``PROBMIX_FUSED=0``
switches the kernels off. Otherwise callers use their torch code (GPUs always do).
The first call of each kernel and dtype compiles it (about 6 s per kernel on a
2-core machine, once: numba caches it on disk). Below the size rule the torch code
takes milliseconds, so a small first fit on a fresh install never waits for a
compile; the rule depends on the data's shape only, so a run's result does not
depend on what is in the cache.

Results do not depend on the thread count: rows are cut into chunks by a rule of
(N, R, K, D) only, and per-chunk partial sums are added in chunk order.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np
import torch

__all__ = ["enabled", "lloyd_pass", "assign", "meanshift_ascend", "kmeanspp_potential"]

# OpenBLAS runs a product with m·n·k at most 65536 · 4 on the calling thread only: staying
# under it keeps the per-block BLAS calls from spawning threads inside the kernel's threads.
_SINGLE_THREAD_GEMM = 65536 * 4
_MAX_BLOCK, _MIN_BLOCK = 256, 16
_MIN_CHUNK_BLOCKS = 16                 # rows per chunk >= 16 blocks: amortises a task
_PARTIAL_ELEMENTS = 1 << 22            # bound on the per-chunk partial sums (32 MiB in float64)
_LOOP_FEATURES = 4                     # up to this many features: no BLAS in the kernels
_MIN_ELEMENTS = 1 << 18               # rows × features from which a compile pays (see above)
_LOCK = threading.Lock()               # numba's workqueue layer must not be entered concurrently
_kernels = None


def _load():
    """The compiled kernel module, or None when numba cannot be imported."""
    global _kernels
    if _kernels is None:
        try:
            from probmix.baselines import _fused_kernels
        except ImportError:  # numba missing or broken: torch code serves
            _kernels = False
        else:
            _kernels = _fused_kernels
    return _kernels or None


def enabled(t: torch.Tensor, *, work: int | None = None) -> bool:
    """Whether the fused kernels serve the tensor ``t``.

    ``t`` (N, D) or (N,): CPU, float32/float64, numba importable, and ``work`` (default
    ``t.numel()``; mean shift passes N × seeds, its cost per step) at least
    ``_MIN_ELEMENTS`` unless ``PROBMIX_FUSED=1`` (``0``: never).
    """
    switch = os.environ.get("PROBMIX_FUSED", "")
    if switch == "0" or not (t.device.type == "cpu" and not t.requires_grad
                             and t.dtype in (torch.float32, torch.float64)):
        return False
    if switch != "1" and (t.numel() if work is None else work) < _MIN_ELEMENTS:
        return False
    return _load() is not None


def layout(n: int, r: int, k: int, d: int) -> tuple[int, int, int]:
    """(rows per block, rows per chunk, chunks) for N rows, R restarts, K centres, D features."""
    block = max(_MIN_BLOCK, min(_MAX_BLOCK, _SINGLE_THREAD_GEMM // max(1, d * k)))
    most_chunks = max(1, _PARTIAL_ELEMENTS // max(1, r * k * (d + 1)))
    chunk = max(block * _MIN_CHUNK_BLOCKS, math.ceil(n / most_chunks))
    chunk = math.ceil(chunk / block) * block
    return block, chunk, max(1, math.ceil(n / chunk))


class _Threads:
    """numba's thread count set to torch's for the duration of a call; torch's kept.

    torch loads its OpenMP runtime into the global namespace, so numba's OpenMP layer
    shares it and starting that layer (or setting its thread count) resets torch's
    thread count: it is restored on the way out.
    """

    def __enter__(self):
        import numba

        self._numba = numba
        self._torch_threads = torch.get_num_threads()
        _LOCK.acquire()
        self._before = numba.get_num_threads()
        want = max(1, min(self._torch_threads, numba.config.NUMBA_NUM_THREADS))
        if want != self._before:
            numba.set_num_threads(want)

    def __exit__(self, *exc):
        if self._numba.get_num_threads() != self._before:
            self._numba.set_num_threads(self._before)
        if torch.get_num_threads() != self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        _LOCK.release()


def _centre_tables(centers: np.ndarray):
    """cka (R, K, D) = -2c, cta (R, D, K) = -2cᵀ, sq (R, K) = ‖c‖², and the kernels' mode.

    Mode (see ``_fused_kernels._nearest``): 0, loops, for at most _LOOP_FEATURES features;
    1, a BLAS product per block, above. Best of 20 passes on this 2-core machine, ms with
    1 / 2 threads (timings vary by ±30% here): 1M×2 K=5 loops 9.1 / 6.3 vs BLAS 9.9 / 7.3;
    100k×10 K=10 loops 4.2 / 1.7 vs BLAS 4.2 / 1.6; 200k×50 K=20 loops 38 / 24 vs BLAS 22 / 12.
    """
    cka = np.ascontiguousarray(-2.0 * centers)
    cta = np.ascontiguousarray(cka.transpose(0, 2, 1))
    sq = np.einsum("rkd,rkd->rk", centers, centers)
    d = centers.shape[2]
    return cka, cta, sq, 0 if d <= _LOOP_FEATURES else 1


def _nearest_setup(x: torch.Tensor, centers: torch.Tensor):
    """Arrays for the nearest-centre kernels: rows (N, D), centres (R, K, D), the layout and
    the centre tables (cka, cta, sq, mode) of :func:`_centre_tables`."""
    c = centers.detach().contiguous().numpy()
    xn = x.detach().numpy()
    return xn, c, layout(xn.shape[0], *c.shape), _centre_tables(c)


def _weights(w: torch.Tensor | None, x: np.ndarray) -> np.ndarray:
    return np.empty(0, dtype=x.dtype) if w is None else w.detach().contiguous().numpy()


def lloyd_pass(x: torch.Tensor, w: torch.Tensor | None, centers: torch.Tensor,
               labels: torch.Tensor):
    """One Lloyd assignment and accumulation over all rows, for R restarts at once.

    Parameters
    ----------
    x : Tensor (N, D), C-contiguous, CPU
        Centred points.
    w : Tensor (N,) or None
        Sample weights (None: all 1).
    centers : Tensor (R, K, D)
    labels : Tensor (R, N) int64, contiguous
        Previous labels; overwritten with the nearest centre of each row (first on ties).

    Returns
    -------
    sums : Tensor (R, K, D)
        Weighted sum of the rows of each centre.
    wsum : Tensor (R, K)
        Weight of each centre.
    changed : Tensor (R,) bool
        Whether any label of the restart changed.
    """
    xn, c, (block, chunk, n_chunks), tables = _nearest_setup(x, centers)
    r, k, d = c.shape
    sums = np.empty((n_chunks, r, k, d), dtype=xn.dtype)
    wsum = np.empty((n_chunks, r, k), dtype=xn.dtype)
    changed = np.empty((n_chunks, r), dtype=np.bool_)
    with _Threads():
        _load().lloyd_pass(xn, _weights(w, xn), *tables, labels.numpy(), sums, wsum, changed,
                           chunk, block)
    return (torch.from_numpy(sums.sum(0)), torch.from_numpy(wsum.sum(0)),
            torch.from_numpy(changed.any(0)))


def assign(x: torch.Tensor, w: torch.Tensor | None, centers: torch.Tensor):
    """Nearest centre of every row and the inertia, for R restarts.

    Parameters
    ----------
    x : Tensor (N, D), C-contiguous, CPU
    w : Tensor (N,) or None
    centers : Tensor (R, K, D)

    Returns
    -------
    labels : Tensor (R, N) int64
    inertia : Tensor (R,)
        Σ w ‖x - c_label‖², from the differences.
    """
    xn, c, (block, chunk, n_chunks), tables = _nearest_setup(x, centers)
    r = c.shape[0]
    labels = np.empty((r, xn.shape[0]), dtype=np.int64)
    inertia = np.empty((n_chunks, r), dtype=xn.dtype)
    with _Threads():
        _load().assign_pass(xn, _weights(w, xn), *tables, c, labels, inertia, chunk, block)
    return torch.from_numpy(labels), torch.from_numpy(inertia.sum(0))


def meanshift_ascend(xs: torch.Tensor, seeds: torch.Tensor, *, axis: int, bandwidth: float,
                     flat: bool, max_iter: int, stop_shift: float):
    """Mean-shift ascent of every seed, each seed to convergence in one task.

    Parameters
    ----------
    xs : Tensor (N, D), CPU
        Points; sorted on column ``axis`` when ``flat``.
    seeds : Tensor (S, D)
    axis : int
        Column the points are sorted on (flat kernel: only points within one bandwidth
        along it are visited).
    bandwidth : float
        Radius of the flat kernel, standard deviation of the Gaussian one.
    flat : bool
    max_iter : int
    stop_shift : float
        A seed stops when it moves by at most this.

    Returns
    -------
    pos : Tensor (S, D)
    support : Tensor (S,) int64
        Points within one bandwidth of the position before the last step (0: none ever).
    n_iter : int
        Steps of the slowest seed.
    converged : bool
        Whether every seed stopped before ``max_iter``.
    """
    import numba

    kern = _load()
    xn = xs.detach().contiguous().numpy()
    sn = seeds.detach().to(xs.dtype).contiguous().numpy()
    s = sn.shape[0]
    key = np.ascontiguousarray(xn[:, axis])
    pos = np.empty_like(sn)
    support = np.empty(s, dtype=np.int64)
    iters = np.empty(s, dtype=np.int64)
    moving = np.empty(s, dtype=np.bool_)
    h2 = bandwidth * bandwidth
    margin = bandwidth * (1 + 1e-6)  # |Δ along one axis| <= distance, with rounding room
    # seeds take very different numbers of steps: hand them out one by one
    with _Threads(), numba.parallel_chunksize(1):
        kern.meanshift_ascend(xn, key, sn, axis, h2, margin, flat, max_iter, stop_shift ** 2,
                              pos, support, iters, moving)
    return (torch.from_numpy(pos), torch.from_numpy(support), int(iters.max(initial=0)),
            not bool(moving.any()))


def kmeanspp_potential(xc: torch.Tensor, xsq: torch.Tensor, w: torch.Tensor,
                       closest: torch.Tensor, cands: torch.Tensor,
                       out: torch.Tensor | None = None) -> torch.Tensor:
    """Potentials of k-means++ candidates: Σ_n w_n min(closest_n, ‖x_n - cand‖²).

    Parameters
    ----------
    xc : Tensor (N, D), C-contiguous, CPU
        Centred points.
    xsq : Tensor (N,)
        Their squared norms.
    w : Tensor (N,)
        Weights.
    closest : Tensor (R, N), contiguous
        Squared distance of each row to its nearest centre so far (inf before the first).
    cands : Tensor (R, T, D)
        Candidate centres of each restart.
    out : Tensor (R, T, N), contiguous, optional
        Receives min(closest, ‖x - cand‖²) for every candidate (the next ``closest`` of
        the winner); may be ``closest.view(R, 1, N)`` when T = 1.

    Returns
    -------
    Tensor (R, T)
        The squared distances are ‖x‖² - 2 x·c + ‖c‖² clamped at 0, as the torch code's.
    """
    kern = _load()
    xn = xc.detach().numpy()
    c = cands.detach().numpy()
    r, t, d = c.shape
    cand_t = np.ascontiguousarray(c.transpose(0, 2, 1))  # (R, D, T)
    csq = np.einsum("rtd,rtd->rt", c, c)
    block, chunk, n_chunks = layout(xn.shape[0], r, t, d)
    pot = np.empty((n_chunks, r, t), dtype=xn.dtype)
    out_n = np.empty((r, t, 0), dtype=xn.dtype) if out is None else out.numpy()
    with _Threads():
        kern.kpp_pass(xn, xsq.detach().contiguous().numpy(), _weights(w, xn), cand_t, csq,
                      closest.numpy(), pot, out_n, chunk, block)
    return torch.from_numpy(pot.sum(0))
