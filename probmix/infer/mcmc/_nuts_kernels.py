"""Numba kernels behind :mod:`probmix.infer.mcmc.nuts_fused`; import that module, not this one.

Two parts, both compiled once and cached on disk (``cache=True``):

- :func:`value_grad`: the full-covariance GaussianMixture potential U (Dirichlet weights, a
  proper normal-Wishart prior) and its closed-form gradient in one pass over the data (the
  formulas of :mod:`probmix.infer.mcmc.potential_full`);
- :func:`transitions`: one multinomial NUTS transition of every chain (the algorithm of
  :mod:`probmix.infer.mcmc.nuts_batched`, one chain after the other), and
  :func:`step_sizes`, the initial step size heuristic.

Parameter vector of a chain (P,): means (K·D, row-major), unconstrained precisions (K·M,
each the vech of v in ``torch.tril_indices`` order, L_ii = exp(v_ii), L_ij = v_ij), and the
K - 1 stick-breaking coordinates of the weights.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["value_grad", "transitions", "step_sizes"]

_MAX_DELTA_ENERGY = 1000.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def _softplus(t):  # pragma: no cover - compiled
    return t + math.log1p(math.exp(-t)) if t > 0 else math.log1p(math.exp(t))


@njit(cache=True, nogil=True)
def value_grad(z, x, alpha, nu, psi, beta, m0, const, k, grad):  # pragma: no cover - compiled
    """U(z) for one chain; writes ∂U/∂z into ``grad`` (P,). See the module for the layout."""
    n, d = x.shape
    m = d * (d + 1) // 2
    pm, pw = k * d, k * d + k * m  # offsets of the precisions and of the weights in z
    chol = np.zeros((k, d, d))
    log_w = np.empty(k)
    zs = np.empty(k - 1)
    lp = 0.0
    # weights: z_i = σ(u_i - log(K - 1 - i)), w_i = z_i Π_{j<i} (1 - z_j), w_K = Π (1 - z_j)
    acc = 0.0  # Σ_{j<i} log(1 - z_j)
    for i in range(k - 1):
        t = z[pw + i] - math.log(k - 1.0 - i)
        zs[i] = 1.0 / (1.0 + math.exp(-t))
        log_z, log_1mz = -_softplus(-t), -_softplus(t)
        log_w[i] = log_z + acc
        lp += log_1mz + log_w[i]  # log|J| of the stick-breaking map
        acc += log_1mz
    log_w[k - 1] = acc
    for j in range(k):
        lp += (alpha[j] - 1.0) * log_w[j]
    log_det = np.zeros(k)  # Σ log L_ii = log|Λ|/2
    for j in range(k):
        e = 0
        for r in range(d):
            for c in range(r + 1):
                v = z[pm + j * m + e]
                if r == c:
                    chol[j, r, r] = math.exp(v)
                    log_det[j] += v
                    # log|J| (D - r + 1: L ↦ LLᵀ and exp), Wishart (ν - D - 1), mean prior's
                    # log|Λ|/2 (1)
                    lp += (nu - r + 1.0) * v
                else:
                    chol[j, r, c] = v
                e += 1
    # priors: -tr(ΨΛ)/2 - β δᵀΛδ/2 (their log-determinant parts are above)
    prec = np.zeros((k, d, d))
    for j in range(k):
        for r in range(d):
            for c in range(d):
                s = 0.0
                for q in range(min(r, c) + 1):
                    s += chol[j, r, q] * chol[j, c, q]
                prec[j, r, c] = s
                lp -= 0.5 * psi[r, c] * s
        for c in range(d):
            y = 0.0
            for r in range(c, d):
                y += chol[j, r, c] * (z[j * d + r] - m0[r])
            lp -= 0.5 * beta * y * y
    # likelihood and the responsibility statistics: n_k, Σ r (x - μ), Σ r (x - μ)(x - μ)ᵀ
    nk = np.zeros(k)
    sk = np.zeros((k, d))
    ck = np.zeros((k, d, d))
    logp = np.empty(k)
    diff = np.empty((k, d))
    bias = np.empty(k)
    for j in range(k):
        bias[j] = log_w[j] + log_det[j] - d * _HALF_LOG_2PI
    for i in range(n):
        top = -np.inf
        for j in range(k):
            for r in range(d):
                diff[j, r] = x[i, r] - z[j * d + r]
            q = 0.0
            for c in range(d):
                y = 0.0
                for r in range(c, d):
                    y += chol[j, r, c] * diff[j, r]
                q += y * y
            logp[j] = bias[j] - 0.5 * q
            top = max(top, logp[j])
        total = 0.0
        for j in range(k):
            logp[j] = math.exp(logp[j] - top)
            total += logp[j]
        lp += top + math.log(total)
        for j in range(k):
            w = logp[j] / total
            nk[j] += w
            for r in range(d):
                wr = w * diff[j, r]
                sk[j, r] += wr
                for c in range(r + 1):
                    ck[j, r, c] += wr * diff[j, c]
    # gradients of the log joint, negated into grad (U = -(lp + const))
    for j in range(k):
        delta = np.empty(d)
        for r in range(d):
            delta[r] = z[j * d + r] - m0[r]
        for r in range(d):  # ∂/∂μ = Λ (Σ r (x - μ) - β δ)
            g = 0.0
            for c in range(d):
                g += prec[j, r, c] * (sk[j, c] - beta * delta[c])
            grad[j * d + r] = -g
        a2 = nk[j] + nu - d  # 2 a_k
        e = 0
        for r in range(d):  # ∂/∂L_rc = 2a δ_rc / L_rr - (M L)_rc, M = C + Ψ + β δδᵀ
            for c in range(r + 1):
                g = 0.0
                for q in range(c, d):
                    mrq = (ck[j, r, q] if q <= r else ck[j, q, r]) + psi[r, q] \
                        + beta * delta[r] * delta[q]
                    g -= mrq * chol[j, q, c]
                if r == c:
                    g = (g + a2 / chol[j, r, r]) * chol[j, r, r] + (d - r + 1.0)
                grad[pm + j * m + e] = -g
                e += 1
    tail = 0.0  # Σ_{j>i} c_j, c_j = n_j + α_j - 1 + [j < K - 1]
    for i in range(k - 1, -1, -1):
        c_i = nk[i] + alpha[i] - 1.0 + (1.0 if i < k - 1 else 0.0)
        if i < k - 1:
            grad[pw + i] = -(c_i * (1.0 - zs[i]) - tail * zs[i] - zs[i])
        tail += c_i
    return -(lp + const)


@njit(cache=True, nogil=True)
def _matvec(dense, mat, diag, r, out):  # pragma: no cover - compiled
    """out = M r for a dense (P, P) or a diagonal (``diag`` (P,)) matrix."""
    p = r.shape[0]
    if dense:
        for a in range(p):
            s = 0.0
            for b in range(p):
                s += mat[a, b] * r[b]
            out[a] = s
    else:
        for a in range(p):
            out[a] = diag[a] * r[a]


@njit(cache=True, nogil=True)
def _dot(a, b):  # pragma: no cover - compiled
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(cache=True, nogil=True)
def _leapfrog(z, r, g, eps, dense, inv, inv_diag, v, x, alpha, nu, psi, beta, m0, const,
              k):  # pragma: no cover - compiled
    """One leapfrog step of size eps (signed) in place on z, r, g; returns U, v = M⁻¹ r."""
    p = z.shape[0]
    for a in range(p):
        r[a] -= 0.5 * eps * g[a]
    _matvec(dense, inv, inv_diag, r, v)
    for a in range(p):
        z[a] += eps * v[a]
    pe = value_grad(z, x, alpha, nu, psi, beta, m0, const, k, g)
    for a in range(p):
        r[a] -= 0.5 * eps * g[a]
    _matvec(dense, inv, inv_diag, r, v)
    return pe


@njit(cache=True, nogil=True)
def _logaddexp(a, b):  # pragma: no cover - compiled
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    top = max(a, b)
    return top + math.log(math.exp(a - top) + math.exp(b - top))


@njit(cache=True, nogil=True)
def _transition(z, g, pe, eps, dense, inv, inv_diag, chol, scale, max_depth, rng, x, alpha,
                nu, psi, beta, m0, const, k, stats):  # pragma: no cover - compiled
    """One NUTS transition of one chain, in place on z, g; returns the new U.

    ``stats`` (5,): mean acceptance, leapfrog steps, tree depth, diverged, energy.
    """
    p = z.shape[0]
    noise = np.empty(p)
    for a in range(p):
        noise[a] = rng.standard_normal()
    r0 = np.empty(p)
    _matvec(dense, chol, scale, noise, r0)  # r ~ N(0, M)
    v0 = np.empty(p)
    _matvec(dense, inv, inv_diag, r0, v0)
    energy0 = pe + 0.5 * _dot(r0, v0)
    # the edges (z, r, g, v, U), the current leaf, the proposals (z, g, U)
    lz, lr, lg, lv = z.copy(), r0.copy(), g.copy(), v0.copy()
    rz, rr, rg, rv = z.copy(), r0.copy(), g.copy(), v0.copy()
    l_pe, r_pe = pe, pe
    cz, cr, cg, cv = np.empty(p), np.empty(p), np.empty(p), np.empty(p)
    sz, sg = np.empty(p), np.empty(p)
    s_pe = 0.0
    pz, pg, p_pe = z.copy(), g.copy(), pe
    r_sum = r0.copy()
    sub_rsum = np.empty(p)
    r_ck, v_ck, rs_ck = np.empty((max_depth, p)), np.empty((max_depth, p)), \
        np.empty((max_depth, p))
    rs = np.empty(p)
    log_w, sum_accept, n_leaves, depth, diverged = 0.0, 0.0, 0, 0, False
    for j in range(max_depth):
        right = rng.random() < 0.5
        if right:
            cz[:], cr[:], cg[:], cv[:] = rz, rr, rg, rv
            c_pe, step = r_pe, eps
        else:
            cz[:], cr[:], cg[:], cv[:] = lz, lr, lg, lv
            c_pe, step = l_pe, -eps
        sub_w = -np.inf
        sub_rsum[:] = 0.0
        ok = True
        for n in range(2 ** j):
            c_pe = _leapfrog(cz, cr, cg, step, dense, inv, inv_diag, cv, x, alpha, nu, psi,
                             beta, m0, const, k)
            delta = c_pe + 0.5 * _dot(cr, cv) - energy0
            if math.isnan(delta):
                delta = np.inf
            new_w = _logaddexp(sub_w, -delta)
            if rng.random() < math.exp(-delta - new_w):
                sz[:], sg[:] = cz, cg
                s_pe = c_pe
            sub_w = new_w
            for a in range(p):
                sub_rsum[a] += cr[a]
            sum_accept += min(1.0, math.exp(-delta))
            n_leaves += 1
            # checkpoints: leaf n closes the sub-subtrees (levels lo..hi) that end at it
            hi, t = 0, n >> 1
            while t:
                hi += t & 1
                t >>= 1
            ones, t = 0, n
            while t & 1:
                ones += 1
                t >>= 1
            lo = hi - ones + 1
            if n % 2 == 0:
                r_ck[hi], v_ck[hi], rs_ck[hi] = cr, cv, sub_rsum
            if delta > _MAX_DELTA_ENERGY:
                diverged, ok = True, False
                break
            for i in range(hi, lo - 1, -1):
                for a in range(p):
                    rs[a] = sub_rsum[a] - rs_ck[i, a] + r_ck[i, a] - 0.5 * (r_ck[i, a] + cr[a])
                if _dot(v_ck[i], rs) <= 0 or _dot(cv, rs) <= 0:
                    ok = False
                    break
            if not ok:
                break
        if not ok:  # the subtree turned or diverged: rejected, the trajectory ends
            break
        if right:
            rz[:], rr[:], rg[:], rv[:] = cz, cr, cg, cv
            r_pe = c_pe
        else:
            lz[:], lr[:], lg[:], lv[:] = cz, cr, cg, cv
            l_pe = c_pe
        if rng.random() < math.exp(sub_w - log_w):
            pz[:], pg[:] = sz, sg
            p_pe = s_pe
        log_w = _logaddexp(log_w, sub_w)
        for a in range(p):
            r_sum[a] += sub_rsum[a]
        depth = j + 1
        for a in range(p):
            rs[a] = r_sum[a] - 0.5 * (lr[a] + rr[a])
        if _dot(lv, rs) <= 0 or _dot(rv, rs) <= 0:
            break
    z[:], g[:] = pz, pg
    stats[0] = sum_accept / max(n_leaves, 1)
    stats[1] = n_leaves
    stats[2] = depth
    stats[3] = 1.0 if diverged else 0.0
    stats[4] = energy0
    return p_pe


@njit(cache=True, nogil=True)
def transitions(z, g, pe, eps, dense, inv, inv_diag, chol, scale, max_depth, rng, x, alpha,
                nu, psi, beta, m0, const, k, stats):  # pragma: no cover - compiled
    """One NUTS transition of each of the C chains (rows of z, g (C, P), pe (C,)), in place.

    ``eps`` (C,); ``inv``/``chol`` (C, P, P) (dense) or ``inv_diag``/``scale`` (C, P): the
    inverse mass matrix and the Cholesky factor (or square root) of the mass matrix; ``stats``
    (C, 5) receives each chain's statistics (see :func:`_transition`).
    """
    for c in range(z.shape[0]):
        pe[c] = _transition(z[c], g[c], pe[c], eps[c], dense, inv[c], inv_diag[c], chol[c],
                            scale[c], max_depth, rng, x, alpha, nu, psi, beta, m0, const, k,
                            stats[c])


@njit(cache=True, nogil=True)
def step_sizes(z, g, pe, eps, dense, inv, inv_diag, chol, scale, rng, x, alpha, nu, psi,
               beta, m0, const, k):  # pragma: no cover - compiled
    """Per chain, double or halve ε (C,) until one leapfrog step's acceptance crosses 1/2."""
    c_n, p = z.shape
    out = eps.copy()
    zz, rr, gg, vv, v0, noise = np.empty(p), np.empty(p), np.empty(p), np.empty(p), \
        np.empty(p), np.empty(p)
    for c in range(c_n):
        e = out[c]
        direction = 0
        for it in range(30):
            for a in range(p):
                noise[a] = rng.standard_normal()
            _matvec(dense, chol[c], scale[c], noise, rr)
            _matvec(dense, inv[c], inv_diag[c], rr, v0)
            h0 = pe[c] + 0.5 * _dot(rr, v0)
            zz[:], gg[:] = z[c], g[c]
            pen = _leapfrog(zz, rr, gg, e, dense, inv[c], inv_diag[c], vv, x, alpha, nu, psi,
                            beta, m0, const, k)
            delta = pen + 0.5 * _dot(rr, vv) - h0
            if math.isnan(delta):
                delta = np.inf
            up = 1 if -delta > math.log(0.5) else -1
            if direction == 0:
                direction = up
            elif up != direction:
                break
            e = e * 2.0 if direction == 1 else e / 2.0
        out[c] = e
    return out
