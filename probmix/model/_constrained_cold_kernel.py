"""Numba kernel of EM's first M-step for EVE and VVE, whose estimate depends on where the
iteration over the common orientation starts (for the compiled small-data EM).

With no current covariances, :func:`probmix.model.parsimonious.constrained_covariances`
starts EVE/VVE from K + 1 orientations, runs a few sweeps from each and continues the
best; :func:`constrained_cold` does the same on plain float64 arrays. Every other model's
estimate is the one of :func:`probmix.model._constrained_kernel.constrained`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from probmix._numba_cache import drop_stale as _drop_stale
from probmix.model import _constrained_kernel, _parsimonious_kernels
from probmix.model._constrained_kernel import (ANGLE_TOL, INNER_MAX_ITER, INNER_TOL, WARM_SWEEPS,
                                               _compose, _eig_descending, _rotate, constrained,
                                               symmetric_eigen)
from probmix.model._parsimonious_kernels import orientation_sweeps

__all__ = ["constrained_cold"]


@njit(cache=True, nogil=True)
def _objective(cov, w, counts):  # pragma: no cover - compiled
    """f(Σ) = Σ_k [n_k log|Σ_k| + tr(Σ_k⁻¹ W_k)] (parsimonious.objective); +inf if a Σ_k is
    singular."""
    k, d = w.shape[0], w.shape[1]
    chol = np.empty((d, d))
    column = np.empty(d)
    value = 0.0
    for c in range(k):
        for i in range(d):  # Cholesky of Σ_k (lower)
            for j in range(i + 1):
                s = cov[c, i, j]
                for m in range(j):
                    s -= chol[i, m] * chol[j, m]
                if i == j:
                    if not s > 0.0:
                        return math.inf
                    chol[i, i] = math.sqrt(s)
                else:
                    chol[i, j] = s / chol[j, j]
        for i in range(d):
            value += counts[c] * 2.0 * math.log(chol[i, i])
        for b in range(d):  # tr(Σ⁻¹ W) = Σ_b e_bᵀ L⁻ᵀ L⁻¹ W e_b: solve L y = W e_b
            for i in range(d):
                s = w[c, i, b]
                for m in range(i):
                    s -= chol[i, m] * column[m]
                column[i] = s / chol[i, i]
            for i in range(d - 1, -1, -1):  # Lᵀ z = y
                s = column[i]
                for m in range(i + 1, d):
                    s -= chol[m, i] * column[m]
                column[i] = s / chol[i, i]
            value += column[b]
    return value


@njit(cache=True, nogil=True)
def _orientation_from(w, counts, equal_volume, rot, sweeps, out):  # pragma: no cover
    """parsimonious._common_orientation_from for one start ``rot`` (D, D), replaced by the
    final orientation; the covariances in ``out`` (K, D, D)."""
    k, d = w.shape[0], w.shape[1]
    rotated = np.empty((1, k, d, d))
    _rotate(w, rot, rotated[0])
    orientation = rot.reshape(1, d, d)
    volume, shapes = orientation_sweeps(rotated, orientation, counts.reshape(1, k),
                                        equal_volume, sweeps, INNER_TOL, ANGLE_TOL)
    for c in range(k):
        _compose(volume[0, c], shapes[0, c], orientation[0], out[c])


@njit(cache=True, nogil=True)
def constrained_cold(code, w, counts, out, bases):  # pragma: no cover - compiled
    """:func:`constrained` with no current covariances (EM's first M-step). EVE and VVE then
    start, as parsimonious._common_orientation does, from K + 1 orientations (the
    eigenvectors of the pooled scatter Σ_k W_k and of each W_k), run a few sweeps from each,
    and continue the best (lowest objective) to convergence from the eigenvectors of its
    first covariance; ``bases[0]`` gets the final orientation. The other models have one
    answer whatever the start."""
    k, d = w.shape[0], w.shape[1]
    if code != 8 and code != 9:
        constrained(code, w, counts, out, out, bases)
        return
    equal_volume = code == 8
    starts = np.zeros((k + 1, d, d))
    values = np.empty(d)
    pooled = np.zeros((d, d))
    for c in range(k):
        for i in range(d):
            for j in range(d):
                pooled[i, j] += w[c, i, j]
    basis = np.eye(d)
    _eig_descending(pooled, values, starts[0], basis)
    for c in range(k):
        basis = np.eye(d)
        _eig_descending(w[c], values, starts[c + 1], basis)
    trial = np.empty((k, d, d))
    best_value = math.inf
    for j in range(k + 1):
        _orientation_from(w, counts, equal_volume, starts[j], WARM_SWEEPS, trial)
        value = _objective(trial, w, counts)
        if j == 0 or value < best_value:  # the first of equal ones, as torch's argmin
            best_value = value
            for c in range(k):
                for a in range(d):
                    for b in range(d):
                        out[c, a, b] = trial[c, a, b]
    vectors = np.empty((d, d))
    symmetric_eigen(out[0], values, vectors)  # as torch.linalg.eigh: increasing values
    _orientation_from(w, counts, equal_volume, vectors, INNER_MAX_ITER, out)
    for i in range(d):
        for j in range(d):
            bases[0, i, j] = vectors[i, j]


_drop_stale(constrained_cold, _constrained_kernel, _parsimonious_kernels)
