"""Numba kernel of a whole maximum-likelihood EM fit on small data (the compiled EM).

Use :class:`probmix.infer.map.em_compiled.KernelRun`, not this module. On a few hundred rows
one EM iteration of the batched torch loop costs about 80 small tensor operations (~0.5 ms),
while the arithmetic is a few microseconds: ``select``'s 126 fits were almost all overhead.
Here each restart runs its own loop in plain compiled code: the E-step through the Cholesky
factors of the covariances, the sufficient statistics, the constrained M-step of
:mod:`probmix.model._constrained_kernel`, re-seeding of empty components, the stopping rule
and the check for components held up by the ridge alone, each exactly as
:func:`probmix.infer.map.em.fit_em` does them in torch.

Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from probmix._numba_cache import drop_stale as _drop_stale
from probmix.model import _constrained_cold_kernel, _constrained_kernel, _parsimonious_kernels
from probmix.model._constrained_cold_kernel import constrained_cold
from probmix.model._constrained_kernel import constrained, symmetric_eigen
from probmix.model._parsimonious_kernels import cholesky_lower
from probmix.infer.map import _e_step_kernel
from probmix.infer.map._e_step_kernel import e_step

__all__ = ["em_restarts", "log_likelihood", "partition_m_step"]

_EPS = 2.220446049250313e-16
_TINY = 2.2250738585072014e-308


@njit(cache=True, nogil=True, error_model="numpy")
def _stopped(aitken, tol, current, previous, before):  # pragma: no cover - compiled
    """em_torch._stopped for one restart (see its docstring for the rules)."""
    step = current - previous
    if not aitken:
        return abs(step) < tol
    last = previous - before
    rate = step / (last if last != 0.0 else 1.0)
    valid = last > 0.0 and rate >= 0.0 and rate < 1.0 and step >= 0.0
    gap = step * rate / (1.0 - (rate if valid else 0.0))
    stalled = step <= 0.0 and abs(step) <= tol
    return ((valid and gap <= tol and step <= tol) or stalled) and tol > 0.0


@njit(cache=True, nogil=True)
def _ridge_held(cov, ridge):  # pragma: no cover - compiled
    """em_torch.ridge_held for one parameter set: some Σ_k scaled by the ridge has an eigenvalue
    at most 1 + 1e-3."""
    k, d = cov.shape[0], cov.shape[1]
    largest = 0.0
    for i in range(d):
        largest = max(largest, ridge[i])
    if largest <= 0.0:
        return False
    unit, values, vectors = np.empty((d, d)), np.empty(d), np.empty((d, d))
    for c in range(k):
        for i in range(d):
            for j in range(d):
                unit[i, j] = cov[c, i, j] / math.sqrt(max(ridge[i], _TINY) * max(ridge[j], _TINY))
        symmetric_eigen(unit, values, vectors)
        if values[0] <= 1.0 + 1e-3:
            return True
    return False


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _m_step(code, nk, sx, sxx, start, ridge, weights, means, scatter, cov, bases,
            cold=False):  # pragma: no cover
    """Maximum-likelihood weights (K,), means (K, D) and constrained covariances (K, D, D)
    with the ridge, from the statistics (counts floored as in em_steps.m_step)."""
    k, d = sx.shape
    counts = np.empty(k)
    total = 0.0
    for c in range(k):
        counts[c] = nk[c] + 10 * _EPS
        total += counts[c]
    for c in range(k):
        weights[c] = counts[c] / total
        for a in range(d):
            means[c, a] = sx[c, a] / counts[c]
        for a in range(d):
            for b in range(a + 1):
                value = sxx[c, a, b] - sx[c, a] * sx[c, b] / counts[c]
                scatter[c, a, b] = value
                scatter[c, b, a] = value
    if cold:  # no current covariances (``start`` unused)
        constrained_cold(code, scatter, counts, cov, bases)
    else:
        constrained(code, scatter, counts, start, cov, bases)
    for c in range(k):
        for a in range(d):
            cov[c, a, a] += ridge[a]


@njit(cache=True, nogil=True, error_model="numpy")
def em_restarts(x, sw, code, weights, means, cov, ok, ridge, reset_cov, log_jacobian,
                total_weight, min_count, max_iter, tol, aitken, check_held, reseed_patience,
                history, n_iter, converged, held, steps, trail, reseeding, bases, budget,
                screen_tol, paused):  # pragma: no cover - compiled
    """Run every restart's EM to its stop (or to a pause), in place.

    A restart's whole state lives in the arrays below, so a paused restart resumes in a later
    call exactly where it stopped: the iterates, the stopping rule's history and the
    re-seeding count are those of one uninterrupted run (``select`` screens every restart
    for a few iterations and resumes only where it matters; em_grid).

    Parameters
    ----------
    x : float64 (N, D)
        Standardised rows.
    sw : float64 (N,)
        Row weights (ones when unweighted).
    code : int
        The covariance model's position in ``MODELS``.
    weights (R, K), means (R, K, D), cov (R, K, D, D) : float64
        Initial parameters (full covariances), replaced by the final ones.
    ok : bool (R,)
        Restarts whose covariances factorise; set False for one that breaks.
    ridge : float64 (D,)
        The ridge added to every covariance's diagonal.
    reset_cov : bool
        Whether a re-seeded component also gets the global covariance (not for a tied model).
    log_jacobian, total_weight, min_count : float
        As in fit_em: the objective is (log-likelihood + log_jacobian) / total_weight; a
        component with a weighted count below min_count is empty.
    max_iter : int
    tol : float
    aitken : bool
        The stopping rule ("aitken", else "change").
    check_held : bool
        Stop a restart whose covariance is the ridge alone in some direction (every tenth
        iteration; there are other restarts to win).
    reseed_patience : int
        Stop (unconverged) a restart that keeps re-seeding an empty component for this many
        iterations with a settled objective.
    history : float64 (max_iter, R)
        Objective per unit weight before each M-step; row t written while restart r runs.
    n_iter : int64 (R,), converged, held : bool (R,), steps : int64 (R,)
        M-steps taken, whether the stopping rule was met, whether stopped on the ridge, and
        loop iterations run (rows of ``history`` written); zeros and False for a fresh run,
        carried for a resumed one.
    trail : float64 (R, 2)
        The objective one and two iterations back (-inf for a fresh run), carried.
    reseeding : int64 (R,)
        Consecutive settled iterations spent re-seeding an empty component (0 fresh), carried.
    bases : float64 (R, K, D, D)
        Each restart's eigenvectors carried between M-steps (EVE/VVE's warm start; identity
        matrices for a fresh run), carried.
    budget : int64 (R,)
        Run restart r while ``steps[r] < budget[r]`` (``max_iter``: to its stop).
    screen_tol : float
        Pause a restart (it stays resumable) once its objective changes by less than this
        (0: never), as well as at its budget.
    paused : bool (R,)
        Output: whether the restart can go on (paused at its budget or by ``screen_tol``)
        rather than finished (stopping rule met, on the ridge, broken, re-seeding without end,
        or at ``max_iter``).
    """
    n, d = x.shape
    n_restarts, k = weights.shape
    chol = np.zeros((k, d, d))
    new_chol = np.zeros((k, d, d))
    log_det = np.empty(k)
    new_log_det = np.empty(k)
    nk, sx, sxx = np.empty(k), np.empty((k, d)), np.zeros((k, d, d))
    lse = np.empty(n)
    xt = np.ascontiguousarray(x.T)
    logp, z, top, scale = np.empty((k, n)), np.empty((d, n)), np.empty(n), np.empty(n)
    bits = np.empty(n, np.int64)
    new_w, new_m = np.empty(k), np.empty((k, d))
    scatter, new_c = np.empty((k, d, d)), np.empty((k, d, d))
    # the re-seeding covariance: the model's estimate for the whole data, as em_init's
    # global_covariance (every component given every row)
    gw, gm, gsx, gsxx = np.empty(k), np.empty((k, d)), np.zeros((k, d)), np.zeros((k, d, d))
    global_cov = np.empty((k, d, d))
    gn = np.full(k, total_weight)
    for i in range(n):
        for a in range(d):
            gsx[0, a] += sw[i] * x[i, a]
            for b in range(a + 1):
                gsxx[0, a, b] += sw[i] * x[i, a] * x[i, b]
    for c in range(1, k):
        for a in range(d):
            gsx[c, a] = gsx[0, a]
            for b in range(a + 1):
                gsxx[c, a, b] = gsxx[0, a, b]
    for c in range(k):  # EVE/VVE start from the data's own orientation
        for a in range(d):
            for b in range(d):
                new_c[c, a, b] = gsxx[c, max(a, b), min(a, b)]
    global_bases = np.zeros((k, d, d))
    for c in range(k):
        for a in range(d):
            global_bases[c, a, a] = 1.0
    _m_step(code, gn, gsx, gsxx, new_c, ridge, gw, gm, scatter, global_cov, global_bases)
    for r in range(n_restarts):
        paused[r] = False
        finished = converged[r] or held[r] or not ok[r] or reseeding[r] >= reseed_patience
        active = not finished and steps[r] < min(budget[r], max_iter)
        if not active:
            paused[r] = not finished and steps[r] < max_iter
            continue
        for c in range(k):
            log_det[c] = cholesky_lower(cov[r, c], chol[c])
            if not math.isfinite(log_det[c]):
                active = False
                ok[r] = False
        previous, before = trail[r, 0], trail[r, 1]
        t = steps[r]
        stop_at = min(budget[r], max_iter)
        while active and t < max_iter:
            loglik = e_step(xt, sw, weights[r], means[r], chol, log_det, nk, sx, sxx, lse, logp,
                             z, top, scale, bits)
            current = (loglik + log_jacobian) / total_weight
            history[t, r] = current
            _m_step(code, nk, sx, sxx, cov[r], ridge, new_w, new_m, scatter, new_c, bases[r])
            empty = False
            for c in range(k):
                empty = empty or nk[c] < min_count
            if empty:  # move empty components onto the worst-explained rows
                worst = np.argsort(lse)
                rank = 0
                norm = 0.0
                for c in range(k):
                    if nk[c] < min_count:
                        row = worst[min(rank, n - 1)]
                        for a in range(d):
                            new_m[c, a] = x[row, a]
                            for b in range(d):
                                if reset_cov:
                                    new_c[c, a, b] = global_cov[c, a, b]
                        new_w[c] = 1.0 / total_weight
                        rank += 1
                    norm += new_w[c]
                for c in range(k):
                    new_w[c] /= norm
            new_ok = True
            for c in range(k):
                new_log_det[c] = cholesky_lower(new_c[c], new_chol[c])
                new_ok = new_ok and math.isfinite(new_log_det[c])
            if new_ok:
                for c in range(k):
                    weights[r, c] = new_w[c]
                    log_det[c] = new_log_det[c]
                    for a in range(d):
                        means[r, c, a] = new_m[c, a]
                        for b in range(d):
                            cov[r, c, a, b] = new_c[c, a, b]
                            chol[c, a, b] = new_chol[c, a, b]
                n_iter[r] += 1
            else:
                ok[r] = False
            settled = new_ok and _stopped(aitken, tol, current, previous, before)
            done = settled and not empty
            reseeding[r] = reseeding[r] + 1 if settled and empty else 0  # see em_torch
            converged[r] = converged[r] or done
            pause = screen_tol > 0.0 and abs(current - previous) < screen_tol
            before, previous = previous, current
            if check_held and t % 10 == 9 and _ridge_held(cov[r], ridge):
                held[r] = True
                active = False
            active = active and not done and ok[r] and reseeding[r] < reseed_patience
            t += 1
            if active and (pause or t >= stop_at) and t < max_iter:
                paused[r] = True
                active = False
        steps[r] = t
        trail[r, 0], trail[r, 1] = previous, before


@njit(cache=True, nogil=True, error_model="numpy")
def log_likelihood(x, sw, weights, means, cov):  # pragma: no cover - compiled
    """Σ_n sw_n log p(x_n) for one parameter set: weights (K,), means (K, D), full
    covariances cov (K, D, D); -inf when a covariance does not factorise."""
    n, d = x.shape
    k = weights.shape[0]
    chol, log_det = np.zeros((k, d, d)), np.empty(k)
    for c in range(k):
        log_det[c] = cholesky_lower(cov[c], chol[c])
        if not math.isfinite(log_det[c]):
            return -math.inf
    xt = np.ascontiguousarray(x.T)
    return e_step(xt, sw, weights, means, chol, log_det, np.empty(k), np.empty((k, d)),
                   np.zeros((k, d, d)), np.empty(n), np.empty((k, n)), np.empty((d, n)),
                   np.empty(n), np.empty(n), np.empty(n, np.int64))


@njit(cache=True, nogil=True, error_model="numpy")
def partition_m_step(code, x, sw, labels, k, ridge, weights, means, cov,
                     ok):  # pragma: no cover - compiled
    """EM's first M-step from hard partitions: ``labels`` int64 (R, N) in 0..K-1 give weights
    (R, K), means (R, K, D) and covariances (R, K, D, D) with the ridge, written in place;
    ``ok`` (R,) says which factorise. The estimates of em_steps.m_step from the one-hot
    responsibilities with no current covariances (EVE/VVE's several orientation starts:
    _constrained_kernel.constrained_cold)."""
    n, d = x.shape
    r = labels.shape[0]
    nk, sx, sxx = np.empty(k), np.empty((k, d)), np.zeros((k, d, d))
    scatter, unused, bases = np.empty((k, d, d)), np.zeros((k, d, d)), np.zeros((k, d, d))
    chol = np.empty((d, d))
    for j in range(r):
        nk[:] = 0.0
        sx[:] = 0.0
        sxx[:] = 0.0
        for i in range(n):
            c = labels[j, i]
            nk[c] += sw[i]
            for a in range(d):
                sx[c, a] += sw[i] * x[i, a]
                for b in range(a + 1):
                    sxx[c, a, b] += sw[i] * x[i, a] * x[i, b]
        bases[:] = 0.0
        for c in range(k):
            for a in range(d):
                bases[c, a, a] = 1.0
        _m_step(code, nk, sx, sxx, unused, ridge, weights[j], means[j], scatter, cov[j], bases,
                True)
        ok[j] = True
        for c in range(k):
            ok[j] = ok[j] and math.isfinite(cholesky_lower(cov[j, c], chol))


for _kernel in (em_restarts, log_likelihood, partition_m_step):
    _drop_stale(_kernel, _constrained_kernel, _constrained_cold_kernel, _parsimonious_kernels,
                _e_step_kernel)
