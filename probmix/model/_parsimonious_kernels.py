"""Numba kernels of the iterated M-steps of the parsimonious models (VEI, VEV, VEE, EVE, VVE).

Import :func:`probmix.model.parsimonious.constrained_covariances`, not this module. Each
iteration alternates small closed-form updates (per component and per coordinate, or one
D×D Cholesky): written with torch operations they cost dozens of tiny tensor operations per
inner step, most of ``select``'s time on small data (EVE/VVE's plane rotations: 16 ms per
M-step at D = 4); here they run as plain loops, in float64. Each batch member (EM restart)
iterates until its own objective settles.

Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["orientation_sweeps", "volume_shape_sweeps", "vee_sweeps", "cholesky_lower"]

_TINY = 2.2250738585072014e-308 * 1e4  # float64's smallest normal number, times 1e4


@njit(cache=True, nogil=True, inline="always")
def _settled(value, previous, it, tol):  # pragma: no cover - compiled
    """Whether an inner iteration stops: f is not finite (a collapsed restart, which EM drops),
    or it changed by at most ``tol`` relative to max(|f|, 1) since the previous step."""
    if not math.isfinite(value):
        return True
    return it > 0 and abs(value - previous) <= tol * max(abs(value), 1.0)


@njit(cache=True, nogil=True)
def _volume_shape(rotated_w, counts, equal_volume, volume, shape):  # pragma: no cover
    """Closed-form λ_k and A_k given the orientation: A_k ∝ diag(Dᵀ W_k D), |A_k| = 1;
    returns f = Σ_k [n_k D log λ_k + D |diag B_k|^(1/D) / λ_k]."""
    k, d = shape.shape
    root = np.empty(k)
    for c in range(k):
        log_sum = 0.0
        for j in range(d):
            log_sum += math.log(max(rotated_w[c, j, j], _TINY))
        root[c] = math.exp(log_sum / d)
        for j in range(d):
            shape[c, j] = rotated_w[c, j, j] / root[c]
    if equal_volume:
        common = root.sum() / counts.sum()
        for c in range(k):
            volume[c] = common
    else:
        for c in range(k):
            volume[c] = root[c] / counts[c]
    value = 0.0
    for c in range(k):
        value += counts[c] * d * math.log(volume[c]) + d * root[c] / volume[c]
    return value


@njit(cache=True, nogil=True)
def orientation_sweeps(rotated_w, orientation, counts, equal_volume, sweeps, tol,
                       angle_tol):  # pragma: no cover - compiled
    """Minimise f over the common orientation D, the shapes and the volumes, in place.

    Parameters
    ----------
    rotated_w : float64 (B, K, D, D)
        B_k = Dᵀ W_k D at the starting orientation; rotated along with D.
    orientation : float64 (B, D, D)
        The starting orientations (columns); updated in place.
    counts : float64 (B, K)
    equal_volume : bool
        EVE (one volume) or VVE.
    sweeps : int
        At most this many sweeps of plane rotations per batch member.
    tol, angle_tol : float
        A member stops when f changes by at most ``tol`` relative to max(|f|, 1) between
        sweeps, or when a sweep's largest rotation is below ``angle_tol``.

    Returns
    -------
    volume (B, K), shape (B, K, D)
        The closed-form volumes and shapes at the final orientation.
    """
    n_batch, k, d, _ = rotated_w.shape
    volume = np.empty((n_batch, k))
    shape = np.empty((n_batch, k, d))
    m = np.empty((k, d))
    for b in range(n_batch):
        w = rotated_w[b]
        rot = orientation[b]
        previous = math.nan
        for sweep in range(sweeps):
            value = _volume_shape(w, counts[b], equal_volume, volume[b], shape[b])
            if _settled(value, previous, sweep, tol):
                break
            previous = value
            for c in range(k):
                for j in range(d):
                    m[c, j] = 1.0 / (volume[b, c] * shape[b, c, j])
            largest = 0.0
            for i in range(d - 1):
                for j in range(i + 1, d):
                    half_diff = 0.0
                    cross = 0.0
                    for c in range(k):
                        a, e, off = w[c, i, i], w[c, j, j], w[c, i, j]
                        mi, mj = m[c, i], m[c, j]
                        half_diff += 0.5 * ((mi * a + mj * e) - (mi * e + mj * a))
                        cross += off * (mi - mj)
                    theta = 0.5 * math.atan2(-cross, -half_diff)  # the exact minimum
                    if not math.isfinite(theta):
                        theta = 0.0
                    largest = max(largest, abs(theta))
                    cs, sn = math.cos(theta), math.sin(theta)
                    for r in range(d):  # columns i, j of D
                        ci, cj = rot[r, i], rot[r, j]
                        rot[r, i] = cs * ci + sn * cj
                        rot[r, j] = -sn * ci + cs * cj
                    for c in range(k):  # rows, then columns, i and j of every B_k
                        for r in range(d):
                            ri, rj = w[c, i, r], w[c, j, r]
                            w[c, i, r] = cs * ri + sn * rj
                            w[c, j, r] = -sn * ri + cs * rj
                        for r in range(d):
                            ci, cj = w[c, r, i], w[c, r, j]
                            w[c, r, i] = cs * ci + sn * cj
                            w[c, r, j] = -sn * ci + cs * cj
            if largest < angle_tol:
                break
        _volume_shape(w, counts[b], equal_volume, volume[b], shape[b])
    return volume, shape


@njit(cache=True, nogil=True)
def volume_shape_sweeps(values, counts, max_iter, tol):  # pragma: no cover - compiled
    """VEI / VEV: minimise Σ_k [n_k D log λ_k + Σ_j v_kj / (λ_k a_j)] over λ (K,) and a (D,)
    with Π_j a_j = 1, alternating the two closed-form coordinate updates.

    Parameters
    ----------
    values : float64 (B, K, D)
        Diagonals of W_k (VEI) or its eigenvalues in decreasing order (VEV).
    counts : float64 (B, K)
    max_iter : int
    tol : float
        Stop when f changes by at most ``tol`` relative to max(|f|, 1).

    Returns
    -------
    volume (B, K), shape (B, D)
    """
    n_batch, k, d = values.shape
    volume = np.empty((n_batch, k))
    shape = np.ones((n_batch, d))
    pooled = np.empty(d)
    for b in range(n_batch):
        for c in range(k):  # start from A = I
            total = 0.0
            for j in range(d):
                total += values[b, c, j]
            volume[b, c] = total / (d * counts[b, c])
        previous = math.nan
        for it in range(max_iter):
            log_sum = 0.0
            for j in range(d):
                pooled[j] = 0.0
                for c in range(k):
                    pooled[j] += values[b, c, j] / volume[b, c]
                log_sum += math.log(max(pooled[j], _TINY))
            root = math.exp(log_sum / d)
            for j in range(d):
                shape[b, j] = pooled[j] / root
            value = 0.0
            for c in range(k):
                total = 0.0
                for j in range(d):
                    total += values[b, c, j] / shape[b, j]
                volume[b, c] = total / (d * counts[b, c])
                value += counts[b, c] * d * math.log(volume[b, c]) + total / volume[b, c]
            if _settled(value, previous, it, tol):
                break
            previous = value
    return volume, shape


@njit(cache=True, nogil=True)
def cholesky_lower(a, low):  # pragma: no cover - compiled
    """low = the lower Cholesky factor of the symmetric (D, D) ``a`` (its lower triangle
    written); returns log|a|, or NaN when ``a`` is not positive definite."""
    d = a.shape[0]
    log_det = 0.0
    for j in range(d):
        s = a[j, j]
        for m in range(j):
            s -= low[j, m] * low[j, m]
        if not s > 0.0:
            return math.nan
        low[j, j] = math.sqrt(s)
        log_det += 2.0 * math.log(max(low[j, j], _TINY))
        for i in range(j + 1, d):
            s = a[i, j]
            for m in range(j):
                s -= low[i, m] * low[j, m]
            low[i, j] = s / low[j, j]
    return log_det


@njit(cache=True, nogil=True)
def _inverse_cholesky(a, inv):  # pragma: no cover - compiled
    """inv = a⁻¹ for a symmetric positive-definite (D, D) ``a``, through its Cholesky factor;
    returns log|a|, or NaN when ``a`` is not positive definite."""
    d = a.shape[0]
    low = np.zeros((d, d))
    log_det = cholesky_lower(a, low)
    if not math.isfinite(log_det):
        return math.nan
    inv_low = np.zeros((d, d))  # L⁻¹ by forward substitution
    for j in range(d):
        inv_low[j, j] = 1.0 / low[j, j]
        for i in range(j + 1, d):
            s = 0.0
            for m in range(j, i):
                s -= low[i, m] * inv_low[m, j]
            inv_low[i, j] = s / low[i, i]
    for i in range(d):  # a⁻¹ = L⁻ᵀ L⁻¹
        for j in range(i, d):
            s = 0.0
            for m in range(j, d):
                s += inv_low[m, i] * inv_low[m, j]
            inv[i, j] = s
            inv[j, i] = s
    return log_det


@njit(cache=True, nogil=True)
def vee_sweeps(scatter, counts, max_iter, tol):  # pragma: no cover - compiled
    """VEE: Σ_k = λ_k C with |C| = 1: alternate C ∝ Σ_k W_k / λ_k and λ_k = tr(C⁻¹ W_k) / (D n_k).

    Parameters
    ----------
    scatter : float64 (B, K, D, D)
    counts : float64 (B, K)
    max_iter : int
    tol : float

    Returns
    -------
    volume (B, K), common (B, D, D)
        NaN volumes where the pooled scatter is not positive definite.
    """
    n_batch, k, d, _ = scatter.shape
    volume = np.empty((n_batch, k))
    common = np.empty((n_batch, d, d))
    pooled = np.empty((d, d))
    inv = np.empty((d, d))
    for b in range(n_batch):
        for c in range(k):
            trace = 0.0
            for j in range(d):
                trace += scatter[b, c, j, j]
            volume[b, c] = trace / (d * counts[b, c])
        previous = math.nan
        for it in range(max_iter):
            for i in range(d):  # loops, not array expressions: they compile several times faster
                for j in range(d):
                    total = 0.0
                    for c in range(k):
                        total += scatter[b, c, i, j] / volume[b, c]
                    pooled[i, j] = total
            log_det = _inverse_cholesky(pooled, inv)
            if not math.isfinite(log_det):
                for c in range(k):
                    volume[b, c] = math.nan
                for i in range(d):
                    for j in range(d):
                        common[b, i, j] = pooled[i, j]
                break
            factor = math.exp(-log_det / d)  # C = pooled · factor has |C| = 1
            for i in range(d):
                for j in range(d):
                    common[b, i, j] = pooled[i, j] * factor
            value = 0.0
            for c in range(k):
                trace = 0.0  # tr(C⁻¹ W_k), C⁻¹ = pooled⁻¹ / factor
                for i in range(d):
                    for j in range(d):
                        trace += inv[i, j] * scatter[b, c, i, j]
                trace /= factor
                volume[b, c] = trace / (d * counts[b, c])
                value += counts[b, c] * d * math.log(volume[b, c]) + trace / volume[b, c]
            if _settled(value, previous, it, tol):
                break
            previous = value
    return volume, common
