"""EM over a grid of (covariance, K) fits of the same data: how ``select`` runs mclust's
search (14 families × K = 1..9) in the compiled kernel.

Every fit starts as :func:`probmix.infer.map.em.fit_em` would (the same starts, ridge and
options; :func:`~probmix.infer.map.em.start_em`) and ends as it would
(:func:`~probmix.infer.map.em.finish_em`); in between, the grid saves work in three ways:

- **shared preparation**: the rows are standardised once per covariance family, not once
  per fit (and, as in every small fit_em, the first M-step from the starting partitions
  runs in the kernel);
- **lazy restarts** (:meth:`Grid.screen`): every restart of a fit runs :data:`SCREEN_STEPS`
  iterations (or until its objective changes by less than the screening tolerance), then
  only the leader goes on, to the screening tolerance. Most fits of a search are far from
  the best criterion and keep these values. :meth:`Grid.refine` resumes *every* restart of
  a fit to the full stopping rule; the kernel keeps each restart's whole state
  (:class:`~probmix.infer.map.em_compiled.KernelRun`), so a refined fit follows the path of
  one uninterrupted run and equals fit_em's fit (tests/test_em_grid.py);
- **parallel fits**: the fits' kernels run in ``threads`` threads (the kernel releases the
  GIL), one fit per task; the results do not depend on the thread count.

Used by ``select`` for maximum likelihood on in-memory CPU float64 data of up to 20,000 rows
and 50 features, and on more rows of few features (:func:`applies`, :func:`serves`);
otherwise it runs fit_em once per fit.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from probmix.infer.map import em_compiled
from probmix.infer.map.em import best_restart, checked_loop_options, finish_em, start_em
from probmix.infer.map.em_data import AUTO_RESTARTS_ROWS, prepare

__all__ = ["Grid", "applies", "cpu_float64", "serves", "SCREEN_STEPS", "GRID_MAX_WORK",
           "GRID_OPTIONS"]

#: every restart runs this many iterations before the leader alone goes on. At 10 the pick
#: and its BIC equalled the full search's on the five mclust data sets and on 120 random
#: mixtures (tests/test_em_grid.py); at 5 one of the 120 lost its pick by 80 BIC units
SCREEN_STEPS = 10
#: beyond AUTO_RESTARTS_ROWS rows (where EM's default is one k-means++ start besides the two
#: trees' starts, so lazy screening saves less) the grid runs while N · D (D + 3) / 2 is at
#: most this: measured against one fit at a time, 50,000 × 2: 6.2 s against 21.0 s;
#: 200,000 × 2: 16.5 against 26.2; 100,000 × 5 (work 2e6): 9.8 against 8.2 (torch's
#: batched products over all cores win there)
GRID_MAX_WORK = 1_000_000
#: the options the grid understands (fit_em's, for in-memory rows and given starts)
GRID_OPTIONS = frozenset({"init", "max_iter", "tol", "stop", "reg_covar", "reg_covar_relative",
                          "seed", "compiled", "progress", "device", "dtype"})


def applies(x, options: dict) -> bool:
    """Whether the grid runs a search on ``x`` (N, D) tensor: EM options it understands,
    CPU float64 rows of a size it serves faster (:func:`serves`), maximum likelihood (the
    caller checks the prior), and the kernel compiled (select compiles it first).

    Up to 20,000 rows the grid has no upper size, unlike a single fit
    (:data:`~probmix.infer.map.em_compiled.MAX_WORK`): with its lazy screening it ran
    1.0-4.4× faster than one fit at a time on every size measured (3,000-20,000 rows, 2-20
    features, K up to 9; benchmarks/bench_select_scale.py).
    """
    if set(options) - GRID_OPTIONS or options.get("compiled", "auto") is False or \
            os.environ.get("PROBMIX_COMPILED_EM", "") == "0":
        return False
    if not cpu_float64(options):
        return False
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.device.type != "cpu" or \
            x.dtype != torch.float64:
        return False
    if not serves(x.shape[0], x.shape[1]):
        return False
    return options.get("compiled", "auto") is True or em_compiled.ready()


def cpu_float64(options: dict) -> bool:
    """Whether EM options ask for the kernel's device and precision: CPU, float64 (the
    defaults)."""
    return str(options.get("device") or "cpu") == "cpu" and \
        str(options.get("dtype") or "float64").replace("torch.", "") == "float64"


def serves(n: int, d: int) -> bool:
    """Whether the grid is the faster way to search N rows of D features: up to
    :data:`~probmix.infer.map.em_data.AUTO_RESTARTS_ROWS` rows (and 50 features), and beyond
    while N · D (D + 3) / 2 is at most :data:`GRID_MAX_WORK`."""
    if d > 50:
        return False
    return n <= AUTO_RESTARTS_ROWS or n * d * (d + 3) // 2 <= GRID_MAX_WORK


class Grid:
    """The fits of a search, each started, screened and refined on demand.

    Parameters
    ----------
    x : Tensor (N, D)
        The rows (CPU float64).
    cells : list of (GaussianMixture, label, K)
        The fits, in the caller's order.
    starts : dict
        K -> int array (R, N): the hard partitions that start every family's fit with K
        components (``select``'s shared "auto" starts).
    options : dict
        fit_em's options (:data:`GRID_OPTIONS`); ``init`` is replaced by ``starts``.
    threads : int
        Fits computed at once, on worker threads (the kernel releases the GIL). Use the grid
        as a context manager (or call :meth:`close`) to stop them. (Starting fits on the
        calling thread while earlier ones run made select slower: the workers then wait for
        the GIL between kernel calls.)
    """

    def __init__(self, x, cells, starts, options, *, threads: int = 1):
        self.x, self.cells, self.starts = x, cells, starts
        opts = {key: value for key, value in options.items() if key not in ("init", "progress")}
        self.compiled = opts.pop("compiled", "auto")
        self.max_iter, self.tol, self.stop, self.reg_covar, self.seed = checked_loop_options(
            max_iter=opts.pop("max_iter", 1000), tol=opts.pop("tol", None),
            stop=opts.pop("stop", "aitken"), reg_covar=opts.pop("reg_covar", 1e-6),
            seed=opts.pop("seed", 0), compiled=self.compiled)
        self.reg_covar_relative = opts.pop("reg_covar_relative", True)
        self.device, self.dtype = opts.pop("device", None), opts.pop("dtype", None)
        self.threads = max(1, int(threads))
        self.begun = [None] * len(cells)  # EMStart per fit
        self.runs = [None] * len(cells)  # KernelRun per fit
        self._prepared = {}  # family -> prepare(...)'s output, shared by that family's fits
        self.screened = {}  # fit -> (its leader, the screening tolerance)
        self._pool = None  # worker threads, started on the first task

    def start(self, i: int) -> bool:
        """Set up fit i exactly as fit_em (checks, starts, the first M-step, in the kernel);
        True. Raises what fit_em raises (a DegenerateCovarianceError for starts whose
        covariances do not factorise)."""
        model, _, k = self.cells[i]
        family = model.family
        if family not in self._prepared:
            self._prepared[family] = prepare(
                model, self.x, sample_weight=None, chunk_size=None, init_size=100_000,
                distributed=False, seed=self.seed, device=self.device, dtype=self.dtype)
        begun = start_em(model, self.x, init=self.starts[k], n_init=None,
                         max_iter=self.max_iter, tol=self.tol, stop=self.stop,
                         reg_covar=self.reg_covar, reg_covar_relative=self.reg_covar_relative,
                         seed=self.seed, device=self.device, dtype=self.dtype,
                         sample_weight=None, warm_start=None, chunk_size=None,
                         init_size=100_000, distributed=False, compiled=True,
                         prepared=self._prepared[family])
        if not begun.kernel:  # applies() vouched for every fit: a bug if it did not hold
            raise RuntimeError(f"EM's kernel does not serve the grid's fit {self.cells[i][1:]}"
                               " although em_grid.applies said it would.")
        self.begun[i], self.runs[i] = begun, begun.run
        return True

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(cancel=kind is not None)  # an error or Ctrl-C: drop the fits not begun

    def close(self, *, cancel: bool = False) -> None:
        """Stop the worker threads once the tasks submitted have finished (``cancel``: the
        tasks not yet begun are dropped; a running kernel call cannot be stopped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None

    def _submit(self, task, i) -> Future:
        """Run ``task(i)`` on a worker thread (inline with one thread); its Future."""
        if self.threads == 1:
            done = Future()
            try:
                done.set_result(task(i))
            except BaseException as error:  # noqa: BLE001 - handed to whoever reads it
                done.set_exception(error)
            return done
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="probmix-grid")
        return self._pool.submit(task, i)

    def submit_screen(self, i: int, screen_tol: float) -> Future:
        """Screen fit i (see :meth:`screen`) on a worker thread."""
        return self._submit(lambda j: self._screen_one(j, float(screen_tol)), i)

    def submit_refine(self, i: int) -> Future:
        """Resume every restart of fit i to the full stopping rule on a worker thread."""
        return self._submit(lambda j: self.runs[j].advance(), i)

    def screen(self, indices, screen_tol: float, *, done=None) -> None:
        """Every restart of fits ``indices`` for :data:`SCREEN_STEPS` iterations (or to a
        change below ``screen_tol`` nats per point), then the leader alone until its objective
        changes by less than ``screen_tol`` (a leader that collapses onto the ridge, or
        breaks, hands over to the next best, as fit_em prefers a healthy restart).
        ``done(i)`` is called (on this thread) as each fit finishes, in order."""
        self._wait(indices, [self.submit_screen(i, screen_tol) for i in indices], done)

    def refine(self, indices, *, done=None) -> None:
        """Resume every restart of fits ``indices`` to the full stopping rule (``done`` as
        in :meth:`screen`)."""
        self._wait(indices, [self.submit_refine(i) for i in indices], done)

    @staticmethod
    def _wait(indices, futures, done) -> None:
        for i, future in zip(indices, futures):
            future.result()
            if done is not None:
                done(i)

    def _screen_one(self, i: int, screen_tol: float) -> None:
        run = self.runs[i]
        run.advance(SCREEN_STEPS, screen_tol=screen_tol)
        while True:
            lead = self._leader(run)
            if run.paused[lead]:
                budget = run.steps.copy()
                budget[lead] = run.max_iter
                run.advance(budget, screen_tol=screen_tol)
            if run.ok[lead] and not run.held[lead] or lead == self._leader(run):
                break
        self.screened[i] = (lead, screen_tol)

    @staticmethod
    def _leader(run) -> int:
        return best_restart(torch.from_numpy(run.ok), torch.from_numpy(run.held),
                            torch.from_numpy(run.current()))

    def fit(self, i: int, *, screened: bool):
        """(Fit, log-likelihood) of fit i as it stands: the best restart, fit_em's warnings.
        A screened fit records the screening rule (``stop="change"``, its tolerance) and
        counts as converged when its leader paused there."""
        run, begun = self.runs[i], self.begun[i]
        out = list(em_compiled.finish_run(run, begun.model.family))
        best = best_restart(out[3], out[6], out[7][-1])
        if screened:
            lead, screen_tol = self.screened[i]
            converged = run.converged.copy()
            converged[lead] |= run.paused[lead]  # its pause is the screening rule's stop
            out[4] = torch.from_numpy(converged)
            fit = finish_em(begun, tuple(out), stop="change", tol=screen_tol)
        else:
            fit = finish_em(begun, tuple(out))
        return fit, run.log_likelihood(best)
