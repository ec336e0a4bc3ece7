"""Numba kernel of EM's E-step on small data: the responsibilities' statistics through the
Cholesky factors, component-major, with a vectorised exp. Part of the compiled EM
(:mod:`probmix.infer.map._em_kernel`); import that, not this module.

Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["e_step", "exp_nonpositive"]

_LOG_2PI = math.log(2.0 * math.pi)
_EXP_FLOOR = -600.0

_MAGIC = 6755399441055744.0  # 1.5 · 2⁵²: adding it rounds |t| < 2³¹ to an integer, kept in
_MAGIC_BITS = 0x4338000000000000  # the low mantissa bits (its bit pattern)
_INV_LN2 = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 in two parts (Cody & Waite): n · _LN2_HI is exact
_LN2_LO = 1.9082149292705877e-10
_INV_FACTORIAL = tuple(1.0 / math.factorial(j) for j in range(14))


@njit(cache=True, nogil=True, error_model="numpy")
def exp_nonpositive(v, bits):  # pragma: no cover - compiled
    """v ← exp(v) in place for v (N,) <= 0, and 0 where v <= _EXP_FLOOR; ``bits`` (N,)
    int64 is work space.

    math.exp is a scalar library call that no loop vectorises: it was two thirds of the
    E-step. Here exp(v) = 2ⁿ exp(r) with n = round(v / ln 2) and |r| <= ln 2 / 2: exp(r) by
    its Taylor polynomial to r¹³ (truncation below 5e-18 relative), 2ⁿ built from its bit
    pattern; every loop vectorises. Accurate to about 2 units in the last place
    (tests/test_em_compiled.py checks it against numpy.exp).
    """
    n = v.shape[0]
    shifted = bits.view(np.float64)
    for i in range(n):
        x = max(v[i], _EXP_FLOOR - 1.0)
        t = x * _INV_LN2 + _MAGIC
        shifted[i] = t
        m = t - _MAGIC  # n as a float
        r = (x - m * _LN2_HI) - m * _LN2_LO
        p = _INV_FACTORIAL[13]
        p = p * r + _INV_FACTORIAL[12]
        p = p * r + _INV_FACTORIAL[11]
        p = p * r + _INV_FACTORIAL[10]
        p = p * r + _INV_FACTORIAL[9]
        p = p * r + _INV_FACTORIAL[8]
        p = p * r + _INV_FACTORIAL[7]
        p = p * r + _INV_FACTORIAL[6]
        p = p * r + _INV_FACTORIAL[5]
        p = p * r + _INV_FACTORIAL[4]
        p = p * r + _INV_FACTORIAL[3]
        p = p * r + _INV_FACTORIAL[2]
        p = p * r + 1.0
        p = p * r + 1.0
        v[i] = p if v[i] > _EXP_FLOOR else 0.0
    for i in range(n):  # 2ⁿ: exponent field n + 1023 (n >= -867 here: a normal number)
        bits[i] = (bits[i] - _MAGIC_BITS + 1023) << 52
    for i in range(n):
        v[i] *= shifted[i]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
def e_step(xt, sw, weights, means, chol, log_det, nk, sx, sxx, lse, logp, z, top,
            scale, bits):  # pragma: no cover - compiled
    """Responsibilities' statistics: nk (K,), sx (K, D), sxx (K, D, D) (lower triangle), and
    log p(x_n) in ``lse`` (N,); returns the weighted log-likelihood.

    Component-major over the transposed rows ``xt`` (D, N), so that every inner loop runs
    along the data and the reductions vectorise (fast-math flags that only reassociate and
    contract: NaN and infinity keep their meaning); ``logp`` (K, N), ``z`` (D, N), ``top``
    and ``scale`` (N,) float64 and ``bits`` (N,) int64 are work space.
    """
    d, n = xt.shape
    k = weights.shape[0]
    for i in range(n):
        top[i] = -math.inf
    for c in range(k):
        const = math.log(weights[c]) - 0.5 * (d * _LOG_2PI + log_det[c])
        for i in range(n):
            logp[c, i] = const
        for a in range(d):  # forward substitution L z = x - μ, all rows at once
            inv = 1.0 / chol[c, a, a]
            mean = means[c, a]
            for i in range(n):
                z[a, i] = xt[a, i] - mean
            for m in range(a):  # axpy along the rows: vectorises
                coef = chol[c, a, m]
                for i in range(n):
                    z[a, i] -= coef * z[m, i]
            for i in range(n):
                z[a, i] *= inv
                logp[c, i] -= 0.5 * z[a, i] * z[a, i]
        for i in range(n):
            top[i] = max(top[i], logp[c, i])
    for i in range(n):
        scale[i] = 0.0
    for c in range(k):
        for i in range(n):
            logp[c, i] -= top[i]  # <= 0
        # a relative density below exp(-600) counts as zero: near the underflow threshold
        # exp and every product with its result (subnormal numbers) run ~100x slower; the
        # statistics change by less than 1e-260 of a row
        exp_nonpositive(logp[c], bits)
        for i in range(n):
            scale[i] += logp[c, i]
    total = 0.0
    for i in range(n):
        lse[i] = top[i] + math.log(scale[i])
        total += sw[i] * lse[i]
        scale[i] = sw[i] / scale[i]
    for c in range(k):
        count = 0.0
        for i in range(n):
            logp[c, i] *= scale[i]  # the weighted responsibility
            count += logp[c, i]
        nk[c] = count
        for a in range(d):
            first = 0.0
            for i in range(n):
                first += logp[c, i] * xt[a, i]
            sx[c, a] = first
            for b in range(a + 1):
                second = 0.0
                for i in range(n):
                    second += logp[c, i] * xt[a, i] * xt[b, i]
                sxx[c, a, b] = second
    return total
