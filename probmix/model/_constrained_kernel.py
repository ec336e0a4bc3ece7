"""Numba kernel of the 14 constrained covariance estimates, for the compiled small-data EM.

The same estimates as :func:`probmix.model.parsimonious.constrained_covariances` (which
documents the models and the objective), for one parameter set, on plain float64 arrays, so
that :mod:`probmix.infer.map._em_kernel` runs a whole EM fit without leaving compiled code.
The iterated models call the kernels of :mod:`probmix.model._parsimonious_kernels` with the
same inner tolerances, and EVE/VVE start from the current orientation with a few sweeps, as
EM does in torch.

Model codes are the positions in :data:`probmix.model.parsimonious.MODELS`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from probmix._numba_cache import drop_stale as _drop_stale
from probmix.model import _parsimonious_kernels
from probmix.model._parsimonious_kernels import orientation_sweeps, vee_sweeps, volume_shape_sweeps

__all__ = ["constrained", "symmetric_eigen"]

_TINY = 2.2250738585072014e-308 * 1e4  # as parsimonious._tiny for float64
INNER_MAX_ITER, INNER_TOL, ANGLE_TOL, WARM_SWEEPS = 100, 1e-10, 1e-10, 5  # parsimonious's


@njit(cache=True, nogil=True)
def _geometric_mean(v):  # pragma: no cover - compiled
    total = 0.0
    for j in range(v.shape[0]):
        total += math.log(max(v[j], _TINY))
    return math.exp(total / v.shape[0])


@njit(cache=True, nogil=True)
def symmetric_eigen(a, values, vectors):  # pragma: no cover - compiled
    """Eigenvalues (D,) in increasing order and eigenvectors (D, D, as columns) of the symmetric
    ``a`` (D, D), by cyclic Jacobi rotations (accurate to rounding for the small D of the
    models; compiles far faster than LAPACK's wrappers)."""
    d = a.shape[0]
    m = a.copy()
    for i in range(d):
        for j in range(d):
            vectors[i, j] = 1.0 if i == j else 0.0
    for _ in range(60):
        rotated = False
        for p in range(d - 1):
            for q in range(p + 1, d):
                apq = m[p, q]
                # negligible against the diagonal (threshold Jacobi): set to zero, no rotation
                if abs(apq) <= 1e-15 * math.sqrt(abs(m[p, p] * m[q, q])) or apq == 0.0:
                    m[p, q] = 0.0
                    m[q, p] = 0.0
                    continue
                rotated = True
                theta = (m[q, q] - m[p, p]) / (2.0 * apq)
                t = (1.0 if theta >= 0.0 else -1.0) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                cs = 1.0 / math.sqrt(t * t + 1.0)
                sn = t * cs
                for r in range(d):  # columns p, q
                    mp, mq = m[r, p], m[r, q]
                    m[r, p] = cs * mp - sn * mq
                    m[r, q] = sn * mp + cs * mq
                for r in range(d):  # rows p, q
                    mp, mq = m[p, r], m[q, r]
                    m[p, r] = cs * mp - sn * mq
                    m[q, r] = sn * mp + cs * mq
                for r in range(d):
                    vp, vq = vectors[r, p], vectors[r, q]
                    vectors[r, p] = cs * vp - sn * vq
                    vectors[r, q] = sn * vp + cs * vq
                m[p, q] = 0.0  # what the rotation makes it, without the rounding residue
                m[q, p] = 0.0
        if not rotated:
            break
    for i in range(d):  # insertion sort, increasing
        values[i] = m[i, i]
    for i in range(1, d):
        j = i
        while j > 0 and values[j - 1] > values[j]:
            values[j - 1], values[j] = values[j], values[j - 1]
            for r in range(d):
                vectors[r, j - 1], vectors[r, j] = vectors[r, j], vectors[r, j - 1]
            j -= 1


@njit(cache=True, nogil=True)
def _eig_descending(w, values, vectors, basis):  # pragma: no cover - compiled
    """Eigenvalues (D,) of the symmetric ``w`` in decreasing order, clamped at 0, and the
    matching eigenvectors (D, D) as columns.

    ``basis`` (D, D), orthonormal columns, is a guess of them (EM's previous eigenvectors,
    or the identity): Jacobi's rotations then run on the nearly diagonal Bᵀ W B, which
    settles in one or two sweeps; ``basis`` is replaced by the new eigenvectors.
    """
    d = w.shape[0]
    product = np.zeros((d, d))  # W B
    for a in range(d):
        for b in range(d):
            wab = w[a, b]
            for j in range(d):
                product[a, j] += wab * basis[b, j]
    rotated = np.zeros((d, d))  # Bᵀ W B
    for a in range(d):
        for i in range(d):
            bai = basis[a, i]
            for j in range(i, d):
                rotated[i, j] += bai * product[a, j]
    for i in range(d):
        for j in range(i):
            rotated[i, j] = rotated[j, i]
    val, vec = np.empty(d), np.empty((d, d))
    symmetric_eigen(rotated, val, vec)
    for j in range(d):
        values[j] = max(val[d - 1 - j], 0.0)
        for i in range(d):
            s = 0.0
            for m in range(d):
                s += basis[i, m] * vec[m, d - 1 - j]
            vectors[i, j] = s
    for i in range(d):
        for j in range(d):
            basis[i, j] = vectors[i, j]


@njit(cache=True, nogil=True)
def _compose(volume, shape, orientation, out):  # pragma: no cover - compiled
    """out = volume · D diag(shape) Dᵀ for one component."""
    d = shape.shape[0]
    for i in range(d):
        for j in range(i, d):
            s = 0.0
            for m in range(d):
                s += orientation[i, m] * shape[m] * orientation[j, m]
            out[i, j] = volume * s
            out[j, i] = volume * s


@njit(cache=True, nogil=True)
def _rotate(w, rot, out):  # pragma: no cover - compiled
    """out[k] = Dᵀ W_k D for W (K, D, D) and D = ``rot`` (D, D): two D³ products per
    component (W_k D, then Dᵀ of it)."""
    k, d = w.shape[0], w.shape[1]
    product = np.empty((d, d))
    for c in range(k):
        for a in range(d):
            for j in range(d):
                product[a, j] = 0.0
            for b in range(d):
                wab = w[c, a, b]
                for j in range(d):
                    product[a, j] += wab * rot[b, j]
        for i in range(d):
            for j in range(d):
                out[c, i, j] = 0.0
        for a in range(d):
            for i in range(d):
                rai = rot[a, i]
                for j in range(d):
                    out[c, i, j] += rai * product[a, j]


@njit(cache=True, nogil=True)
def _fill(out, c, value, scale):  # pragma: no cover - compiled
    """out[c] = value · scale for a (D, D) ``value``."""
    d = value.shape[0]
    for i in range(d):
        for j in range(d):
            out[c, i, j] = value[i, j] * scale


@njit(cache=True, nogil=True, error_model="numpy")
def constrained(code, w, counts, start, out, bases):  # pragma: no cover - compiled
    """The covariances (K, D, D) of model ``code`` minimising Σ_k [n_k log|Σ_k| + tr(Σ_k⁻¹ W_k)].

    Written with plain loops (array expressions compile several times slower).

    Parameters
    ----------
    code : int
        Position of the model in ``MODELS`` (EII VII EEI VEI EVI VVI EEE VEE EVE VVE EEV VEV
        EVV VVV).
    w : float64 (K, D, D)
        Symmetric scatter matrices W_k.
    counts : float64 (K,)
        Positive n_k.
    start : float64 (K, D, D)
        The current covariances (EVE and VVE start from their common orientation).
    out : float64 (K, D, D)
        Written with the estimates.
    bases : float64 (K, D, D)
        Orthonormal guesses of each W_k's eigenvectors (EEV, VEV, EVV), or of start[0]'s
        (EVE, VVE: ``bases[0]``): the identity, or the previous EM step's, which this
        replaces. Any orthonormal guess gives the same estimates; a close one only makes
        the eigendecompositions faster.
    """
    k, d = w.shape[0], w.shape[1]
    total = 0.0
    for c in range(k):
        total += counts[c]
    for c in range(k):
        for i in range(d):
            for j in range(d):
                out[c, i, j] = 0.0
    if code == 13:  # VVV
        for c in range(k):
            _fill(out, c, w[c], 1.0 / counts[c])
        return
    if code == 6:  # EEE
        pooled = np.zeros((d, d))
        for c in range(k):
            for i in range(d):
                for j in range(d):
                    pooled[i, j] += w[c, i, j]
        for c in range(k):
            _fill(out, c, pooled, 1.0 / total)
        return
    if code <= 5:  # the diagonal models: EII VII EEI VEI EVI VVI
        diag = np.empty((1, k, d))
        pooled = np.zeros(d)
        root = np.empty(k)
        everything = 0.0
        for c in range(k):
            for j in range(d):
                diag[0, c, j] = w[c, j, j]
                pooled[j] += w[c, j, j]
                everything += w[c, j, j]
            root[c] = _geometric_mean(diag[0, c])
        if code == 3:  # VEI
            volume, shape = volume_shape_sweeps(diag, counts.reshape(1, k), INNER_MAX_ITER,
                                                INNER_TOL)
        lam = 0.0
        for c in range(k):
            lam += root[c]
        lam /= total  # EVI: λ = Σ_k |diag W_k|^(1/D) / n, A_k ∝ diag W_k
        for c in range(k):
            row = 0.0
            for j in range(d):
                row += diag[0, c, j]
            for j in range(d):
                if code == 0:  # EII
                    value = everything / (d * total)
                elif code == 1:  # VII
                    value = row / (d * counts[c])
                elif code == 2:  # EEI
                    value = pooled[j] / total
                elif code == 3:
                    value = volume[0, c] * shape[0, j]
                elif code == 4:
                    value = lam * diag[0, c, j] / max(root[c], _TINY)
                else:  # VVI
                    value = diag[0, c, j] / counts[c]
                out[c, j, j] = value
        return
    values = np.empty((1, k, d))
    vectors = np.empty((k, d, d))
    if code == 12:  # EVV: C_k = W_k / |W_k|^(1/D), λ = Σ_k |W_k|^(1/D) / n
        root = np.empty(k)
        lam = 0.0
        for c in range(k):
            _eig_descending(w[c], values[0, c], vectors[c], bases[c])
            root[c] = _geometric_mean(values[0, c])
            lam += root[c] / total
        for c in range(k):
            _fill(out, c, w[c], lam / root[c])
        return
    if code == 10 or code == 11:  # EEV, VEV: orientations of W_k, a common shape
        for c in range(k):
            _eig_descending(w[c], values[0, c], vectors[c], bases[c])
        if code == 10:
            pooled = np.zeros(d)
            for c in range(k):
                for j in range(d):
                    pooled[j] += values[0, c, j]
            root = _geometric_mean(pooled)
            for j in range(d):
                pooled[j] /= root
            for c in range(k):
                _compose(root / total, pooled, vectors[c], out[c])
        else:
            volume, shapes = volume_shape_sweeps(values, counts.reshape(1, k), INNER_MAX_ITER,
                                                 INNER_TOL)
            for c in range(k):
                _compose(volume[0, c], shapes[0], vectors[c], out[c])
        return
    if code == 7:  # VEE
        volume, common = vee_sweeps(w.reshape(1, k, d, d), counts.reshape(1, k),
                                    INNER_MAX_ITER, INNER_TOL)
        for c in range(k):
            _fill(out, c, common[0], volume[0, c])
        return
    # EVE (8), VVE (9): one orientation, from the current one (the eigenvectors of any Σ_k)
    rot = np.empty((1, d, d))
    _eig_descending(start[0], np.empty(d), rot[0], bases[0])
    rotated = np.empty((1, k, d, d))
    _rotate(w, rot[0], rotated[0])
    volume, shapes = orientation_sweeps(rotated, rot, counts.reshape(1, k), code == 8,
                                        WARM_SWEEPS, INNER_TOL, ANGLE_TOL)
    for c in range(k):
        _compose(volume[0, c], shapes[0, c], rot[0], out[c])
    for i in range(d):  # the next M-step's guess of start[0]'s eigenvectors
        for j in range(d):
            bases[0, i, j] = rot[0, i, j]


_drop_stale(constrained, _parsimonious_kernels)
