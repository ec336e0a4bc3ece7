"""The compiled small-data EM: when :func:`probmix.infer.map.em.fit_em` uses it, and the bridge
between its tensors and the kernel (:mod:`probmix.infer.map._em_kernel`).

The batched torch loop pays about 0.5 ms of tensor-operation overhead per EM iteration
whatever the data's size; on mclust's data sets (150-272 rows) that overhead was nearly all
of ``select``'s time. The kernel does the same iterations (E-step, the constrained M-step
of every mclust model, re-seeding, the stopping rule, the ridge check) in compiled loops,
from the first M-step on the starting partitions (:meth:`KernelRun.first_m_step`), one
restart at a time (the restarts split over torch's intra-op threads, ``torch.get_num_threads()``,
in parallel threads). It serves maximum-likelihood fits (``prior="flat"``, what ``select``
runs) of the built-in families on in-memory CPU float64 data whose per-iteration work is
small (:data:`MAX_WORK`), once it is compiled; everything else runs the torch loop. The
kernel compiles once per installation (about 20 s; then numba's disk cache loads it in
0.3 s): ``select`` compiles it before a grid of small fits (mclust's 126-fit search on
faithful, ``probmix select faithful.csv``: 22 s the first time, 3.1 s after, of which
the search takes 0.4 s); a single ``fit`` never
waits for it (``compiled=True`` asks it to). ``PROBMIX_COMPILED_EM=0`` turns the kernel
off, ``=1`` uses it for every fit it can serve. Both paths stop within the stopping rule's
tolerance of the same mode (at most 6e-10 nats per point apart on iris for all 14 models;
tests/test_em_compiled.py).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from probmix.infer.map.em_steps import PreparedData
from probmix.infer.map.em_torch import RESEED_PATIENCE
from probmix.model.covariance import (DiagCovariance, FullCovariance, ParsimoniousCovariance,
                                      SphericalCovariance, TiedCovariance, mclust_name)
from probmix.model.parsimonious import MODELS

__all__ = ["applies", "small", "ready", "compile_kernel", "start_run", "partition_run",
           "finish_run", "KernelRun", "MAX_WORK"]

#: the kernel serves fits with N · R · K · D (D + 3) / 2 at most this (per EM iteration):
#: the batched torch loop catches up with it around there (measured on 2 cores, VVV, 7
#: restarts: 20,000 × 2 with K = 5, work 3.5e6, torch 3.3 s and the kernel 3.4 s; 5,000 × 10
#: with K = 5, work 1.1e7, torch 2.1 s and the kernel 2.5 s; 3,000 × 2 with K = 3: 0.011
#: against 0.007 s)
MAX_WORK = 4_000_000
_OURS = (SphericalCovariance, DiagCovariance, TiedCovariance, FullCovariance,
         ParsimoniousCovariance)


def applies(data, family, prior, n_restarts: int, k: int, compiled="auto") -> bool:
    """Whether the compiled kernel serves this fit (see the module's docstring).

    ``compiled``: True uses it whenever it can serve the fit (compiling it first if needed),
    False never; "auto" when the per-iteration work is at most :data:`MAX_WORK` and the kernel
    is already compiled (:func:`ready`), so that no fit pays the one-time compilation.
    """
    switch = os.environ.get("PROBMIX_COMPILED_EM", "")
    if compiled is False or switch == "0" or prior is not None or type(family) not in _OURS:
        return False
    if not isinstance(data, PreparedData) or data.reducer.distributed:
        return False
    if data.x.device.type != "cpu" or data.x.dtype != torch.float64:
        return False
    if mclust_name(family) not in MODELS:
        return False
    if compiled is True or switch == "1":
        return True
    return small(data.n, data.d, n_restarts, k) and ready()


def small(n: int, d: int, n_restarts: int, k: int) -> bool:
    """Whether an EM iteration's work N · R · K · D (D + 3) / 2 is at most :data:`MAX_WORK`."""
    return n * n_restarts * k * d * (d + 3) // 2 <= MAX_WORK


def ready() -> bool:
    """Whether the kernel is compiled (its three entry points: the first M-step, the
    iterations, the log-likelihood): in this process, or in numba's cache on disk (then
    loading it takes about 0.3 s)."""
    from probmix.infer.map._em_kernel import em_restarts, log_likelihood, partition_m_step

    def compiled(kernel) -> bool:
        if kernel.signatures:
            return True
        try:  # numba's on-disk index (an internal API: any change reads as "not compiled")
            return bool(kernel._cache._cache_file._load_index())
        except Exception:  # noqa: BLE001 - any failure means "not known to be compiled"
            return False

    return all(compiled(kernel) for kernel in (em_restarts, partition_m_step, log_likelihood))


def compile_kernel() -> None:
    """Compile the kernel now (about 20 s once per installation, then cached on disk), by
    running it on a tiny problem; ``select`` does this before a grid of fits."""
    if ready():
        return
    x = np.zeros((2, 1))
    x[1, 0] = 1.0
    run = KernelRun(x, np.ones(2), 0, np.empty((1, 1)), np.empty((1, 1, 1)),
                    np.empty((1, 1, 1, 1)), np.zeros(1, np.bool_), np.full(1, 1e-6),
                    reset_cov=True, log_jacobian=0.0, total_weight=2.0, min_count=1e-3,
                    max_iter=2, tol=1e-8, aitken=True, check_held=False)
    run.first_m_step(np.zeros((1, 2), np.int64))
    run.advance()
    run.log_likelihood(0)


class KernelRun:
    """Every restart of one EM fit in the kernel, resumable: the arrays below are the whole
    state (iterates, the stopping rule's history, re-seeding counts, eigen-bases), so that
    :meth:`advance` can pause restarts (after a number of iterations, or once the objective
    changes by less than a screening tolerance) and resume them later on exactly the path of
    one uninterrupted run.

    Parameters
    ----------
    x : float64 (N, D)
        Standardised rows.
    sw : float64 (N,)
    code : int
        The covariance model's position in ``MODELS``.
    w (R, K), m (R, K, D), c (R, K, D, D) : float64
        Initial parameters (full covariances); updated in place.
    ok : bool (R,)
    ridge : float64 (D,)
    reset_cov, log_jacobian, total_weight, min_count, max_iter, tol, aitken, check_held
        As in the kernel (:func:`probmix.infer.map._em_kernel.em_restarts`).
    """

    def __init__(self, x, sw, code, w, m, c, ok, ridge, *, reset_cov, log_jacobian,
                 total_weight, min_count, max_iter, tol, aitken, check_held):
        r, k, d = m.shape
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        self.sw = np.ascontiguousarray(sw, dtype=np.float64)
        self.ridge = np.ascontiguousarray(ridge, dtype=np.float64)
        self.code, self.w, self.m, self.c, self.ok = int(code), w, m, c, ok
        self.fixed = (bool(reset_cov), float(log_jacobian), float(total_weight),
                      float(min_count), int(max_iter), float(tol), bool(aitken),
                      bool(check_held), RESEED_PATIENCE)
        self.max_iter = int(max_iter)
        self.history = np.full((self.max_iter, r), -np.inf)
        self.n_iter, self.steps = np.zeros(r, np.int64), np.zeros(r, np.int64)
        self.converged, self.held = np.zeros(r, np.bool_), np.zeros(r, np.bool_)
        self.trail = np.full((r, 2), -np.inf)
        self.reseeding = np.zeros(r, np.int64)
        self.bases = np.zeros((r, k, d, d))
        self.bases[:, :, np.arange(d), np.arange(d)] = 1.0
        self.paused = np.zeros(r, np.bool_)
        self.total_weight, self.log_jacobian = float(total_weight), float(log_jacobian)

    def advance(self, budget=None, *, screen_tol: float = 0.0, threads: int = 1) -> None:
        """Run every restart until it stops, reaches ``budget`` (int64 (R,) or int: total
        iterations; default ``max_iter``) or, with ``screen_tol`` > 0, its objective changes by
        less than that (a pause: ``paused`` says which restarts can go on).

        ``threads`` > 1 splits the restarts into that many groups run in parallel threads (the
        kernel releases the GIL; every restart computes alone, so the results are the same).
        """
        from probmix.infer.map._em_kernel import em_restarts  # compiles on first use

        r = self.w.shape[0]
        budget = np.broadcast_to(np.asarray(self.max_iter if budget is None else budget,
                                            dtype=np.int64), (r,)).copy()

        def run(rows: slice):
            part = np.ascontiguousarray(self.history[:, rows])
            em_restarts(self.x, self.sw, self.code, self.w[rows], self.m[rows], self.c[rows],
                        self.ok[rows], self.ridge, *self.fixed, part, self.n_iter[rows],
                        self.converged[rows], self.held[rows], self.steps[rows],
                        self.trail[rows], self.reseeding[rows], self.bases[rows],
                        budget[rows], float(screen_tol), self.paused[rows])
            self.history[:, rows] = part

        bounds = np.linspace(0, r, max(1, min(int(threads), r)) + 1).astype(int)
        groups = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        if len(groups) == 1:
            run(groups[0])
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(groups), thread_name_prefix="probmix-em") as pool:
            for future in [pool.submit(run, rows) for rows in groups]:
                future.result()

    def first_m_step(self, labels) -> None:
        """The initial parameters of every restart: EM's first M-step from the hard partitions
        ``labels`` (R, N) (integers 0..K-1), in the kernel; ``ok`` says which factorise."""
        from probmix.infer.map._em_kernel import partition_m_step

        labels = np.ascontiguousarray(labels, dtype=np.int64)
        partition_m_step(self.code, self.x, self.sw, labels, self.m.shape[1], self.ridge,
                         self.w, self.m, self.c, self.ok)

    def current(self) -> np.ndarray:
        """(R,) each restart's last objective per unit weight (-inf before its first
        iteration, or when it broke)."""
        r = self.w.shape[0]
        last = self.history[np.maximum(self.steps - 1, 0), np.arange(r)]
        return np.where((self.steps > 0) & self.ok, last, -np.inf)

    def log_likelihood(self, j: int) -> float:
        """Restart j's log-likelihood at its current parameters, in the original units."""
        from probmix.infer.map._em_kernel import log_likelihood

        return float(log_likelihood(self.x, self.sw, self.w[j], self.m[j], self.c[j])) \
            + self.log_jacobian

    def trimmed_history(self) -> np.ndarray:
        """The history (T, R) up to the longest restart, a finished restart's last value
        carried to the end (as the torch loop records it)."""
        steps = self.steps
        t_max = max(int(steps.max()), 1)
        history = self.history[:t_max].copy()
        for j in range(history.shape[1]):
            if 0 < steps[j] < t_max:
                history[steps[j]:t_max, j] = history[steps[j] - 1, j]
        return history


def _to_native(family, full: torch.Tensor) -> torch.Tensor:
    """Full covariances (R, K, D, D) in the family's native shape."""
    if isinstance(family, SphericalCovariance):
        return full[..., 0, 0]
    if isinstance(family, DiagCovariance):
        return torch.diagonal(full, dim1=-2, dim2=-1).clone()
    if isinstance(family, TiedCovariance):
        return full[:, 0].clone()
    return full


def start_run(data: PreparedData, family, weights, means, cov, ok, *, reg_s, min_count: float,
              max_iter: int, tol: float, stop: str, check_held: bool) -> KernelRun:
    """A :class:`KernelRun` of every restart from given initial parameters.

    Parameters
    ----------
    data : PreparedData
    family : CovarianceFamily
    weights (R, K), means (R, K, D), cov (R, native) : Tensor
        Initial parameters in standardised coordinates.
    ok : Tensor bool (R,)
        Restarts whose initial covariances factorise.
    reg_s : float or Tensor (D,)
        The ridge in standardised units.
    min_count, max_iter, tol, stop, check_held
        As in fit_em's torch loop.
    """
    k = weights.shape[1]
    w, m, c = (np.ascontiguousarray(t.numpy(), dtype=np.float64).copy()
               for t in (weights, means, family.to_full(cov, k, data.d)))
    return _run(data, family, w, m, c, ok.numpy().copy(), reg_s=reg_s, min_count=min_count,
                max_iter=max_iter, tol=tol, stop=stop, check_held=check_held)


def partition_run(data: PreparedData, family, labels, k: int, *, reg_s, min_count: float,
                  max_iter: int, tol: float, stop: str, check_held: bool) -> KernelRun:
    """A :class:`KernelRun` of one restart per hard partition ``labels`` (R, N) (integers
    0..K-1), its initial parameters from EM's first M-step in the kernel
    (:meth:`KernelRun.first_m_step`); other arguments as :func:`start_run`."""
    labels = np.asarray(labels)
    r, d = labels.shape[0], data.d
    run = _run(data, family, np.empty((r, k)), np.empty((r, k, d)), np.empty((r, k, d, d)),
               np.zeros(r, np.bool_), reg_s=reg_s, min_count=min_count, max_iter=max_iter,
               tol=tol, stop=stop, check_held=check_held)
    run.first_m_step(labels)
    return run


def _run(data, family, w, m, c, ok, *, reg_s, min_count, max_iter, tol, stop, check_held):
    k, d = m.shape[1], data.d
    zero = family.from_full(torch.zeros(1, k, d, d, dtype=torch.float64))
    ridge = torch.diagonal(family.to_full(family.add_ridge(zero, reg_s), k, d)[0, 0]).numpy()
    sw = np.ones(data.n) if data.sample_weight is None else \
        data.sample_weight.to(torch.float64).numpy()
    return KernelRun(data.x.numpy(), sw, MODELS.index(mclust_name(family)), w, m, c, ok,
                     ridge, reset_cov=not family.tied, log_jacobian=data.log_jacobian(),
                     total_weight=data.total_weight, min_count=min_count, max_iter=max_iter,
                     tol=tol, aitken=stop == "aitken", check_held=check_held)


def finish_run(run: KernelRun, family):
    """weights, means, cov (native), ok, converged, n_iter, held and history (T, R) of a
    run as it stands, as torch tensors: what the torch loop (em_torch.iterate) returns;
    ``history`` holds the objective per unit weight before each M-step, a finished
    restart's last value carried to the end."""
    as_t = torch.from_numpy
    return (as_t(run.w.copy()), as_t(run.m.copy()), _to_native(family, as_t(run.c.copy())),
            as_t(run.ok.copy()), as_t(run.converged.copy()), as_t(run.n_iter.copy()),
            as_t(run.held.copy()), as_t(run.trimmed_history()))
