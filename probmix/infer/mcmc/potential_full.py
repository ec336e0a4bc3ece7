"""Closed-form gradient of the full-covariance GaussianMixture potential (Dirichlet weights).

HMC spends its time in value-and-gradient evaluations of the potential; for a
few thousand points in low dimension each costs a few hundred small tensor
operations under autograd, and the per-operation overhead dominates. For the
full-covariance family (the common case) the gradient has a short closed form
in the sufficient statistics of the responsibilities, so value and gradient
come from about forty operations and one pass over the data.

Notation (per component k, standardised data): responsibilities r_nk, counts
n_k = Σ_n r_nk, sums s_k = Σ_n r_nk x_n, second moments X_k = Σ_n r_nk x_n x_nᵀ,
C_k = X_k − s_k μ_kᵀ − μ_k s_kᵀ + n_k μ_k μ_kᵀ, δ_k = μ_k − m₀, Λ_k = L_k L_kᵀ.
With a_k = (n_k + ν₀ − D)/2 and M_k = C_k + Ψ₀ + β₀ δ_k δ_kᵀ, the log joint
depends on (μ_k, L_k) through a_k log|Λ_k| − tr(Λ_k M_k)/2, so

    ∂/∂μ_k = Λ_k (s_k − n_k μ_k − β₀ δ_k)
    ∂/∂L_k = 2 a_k diag(1/L_k,ii) − M_k L_k                  (lower triangle)
    ∂/∂v_ii = L_ii (∂/∂L)_ii + (D − i + 1),  ∂/∂v_ij = (∂/∂L)_ij  (i > j)

and for the stick-breaking weights z_i = σ(u_i − log(K − 1 − i)), with
c_k = n_k + α_k − 1 + [k < K − 1] and T_i = Σ_{k>i} c_k,

    ∂/∂u_i = c_i (1 − z_i) − T_i z_i − z_i.

The tests check value and gradient against the autograd potential.
"""

from __future__ import annotations

import torch

from probmix.model.covariance import FullCovariance
from probmix.model.covariance.matrix import unvech
from probmix.model.weights import tail_sums

__all__ = ["full_potential_fn"]


class _ValueAndGrad(torch.autograd.Function):
    """U(params) whose backward returns the precomputed closed-form gradient."""

    @staticmethod
    def forward(ctx, compute, u_w, u_p, means):
        value, grads = compute(u_w.detach(), u_p.detach(), means.detach())
        ctx.save_for_backward(*grads)
        return value

    @staticmethod
    def backward(ctx, g):
        gw, gp, gm = ctx.saved_tensors
        return None, g * gw, g * gp, g * gm


def full_potential_fn(*, transform, alpha, prior, blocks, place, on_diag, diag_weight, const,
                      x=None):
    """``fn(params) -> U`` for the full family with Dirichlet weights and a proper prior.

    Arguments are the pieces :func:`probmix.infer.mcmc.potential.gmm_potential` prepares:
    the stick-breaking ``transform``, ``alpha`` (K,), the (standardised) ``prior``, the
    feature ``blocks`` Φ (F, n), the vech→matrix ``place`` (M, D²), the ``on_diag`` mask
    (M,), the Jacobian ``diag_weight`` (D,) and the constant ``const``.
    """
    nu, psi, beta, m0 = prior.dof, prior.scale, prior.mean_precision, prior.mean_loc
    k = alpha.shape[0]
    d = m0.shape[0]
    not_last = torch.ones_like(alpha)
    not_last[-1] = 0.0  # [k < K-1]
    offset_log = torch.log(torch.arange(k - 1, 0, -1, dtype=alpha.dtype, device=alpha.device))
    jac_diag = _expand(diag_weight, on_diag)  # (M,)
    family = FullCovariance()

    def compute(u_w, u_p, means):
        """Value (B,) and gradients of B parameter sets: u_w (B, K-1), u_p (B, K, M),
        means (B, K, D)."""
        b = means.shape[0]
        weights = transform(u_w)  # (B, K)
        z = torch.sigmoid(u_w - offset_log)  # (B, K-1)
        log_w = torch.log(weights)
        u_diag = u_p[..., on_diag]  # (B, K, D) = log L_ii
        chol = (torch.where(on_diag, u_p.exp(), u_p) @ place).view(b, k, d, d)  # L, lower
        prec = chol @ chol.transpose(-1, -2)  # (B, K, D, D)
        log_det = 2.0 * u_diag.sum(-1)  # (B, K)
        delta = means - m0  # (B, K, D)
        w = family.natural_weights(means, chol, log_weights=log_w)  # (B, K, F): Λ = L Lᵀ
        data, stats = 0.0, 0.0
        for phi in blocks:
            logp = w @ phi  # (B, K, n)
            top = logp.amax(-2, keepdim=True)  # (B, 1, n)
            resp = torch.exp(logp - top)
            total = resp.sum(-2, keepdim=True)
            data = data + (top + torch.log(total)).sum((-2, -1))  # (B,)
            stats = stats + (resp / total) @ phi.T  # (B, K, F)
        n_k, s_k = stats[..., 0], stats[..., 1:1 + d]
        x_k = unvech(stats[..., 1 + d:], d)  # (B, K, D, D)
        lp = ((alpha - 1) * log_w).sum(-1) \
            + (torch.log1p(-z) + log_w[..., :-1]).sum(-1) \
            + (diag_weight * u_diag).sum((-2, -1)) \
            + (nu - d - 1) * u_diag.sum((-2, -1)) - 0.5 * (psi * prec).sum((-3, -2, -1)) \
            + 0.5 * log_det.sum(-1) \
            - 0.5 * beta * (delta * (prec @ delta[..., None])[..., 0]).sum((-2, -1)) \
            + data  # (B,)
        # gradients (of the log joint; U is its negative)
        c = n_k + alpha - 1 + not_last  # (B, K)
        tail = tail_sums(c)  # (B, K-1) Σ_{k>i} c_k
        g_w = c[..., :-1] * (1 - z) - tail * z - z
        g_mu = (prec @ (s_k - n_k[..., None] * means - beta * delta)[..., None])[..., 0]
        outer_sm = s_k[..., :, None] * means[..., None, :]  # (B, K, D, D) s μᵀ
        c_k = x_k - outer_sm - outer_sm.transpose(-1, -2) \
            + n_k[..., None, None] * means[..., :, None] * means[..., None, :]
        m_k = c_k + psi + beta * delta[..., :, None] * delta[..., None, :]
        a_k = 0.5 * (n_k + nu - d)  # (B, K)
        inv_diag = torch.diagonal(chol, dim1=-2, dim2=-1).reciprocal()  # (B, K, D)
        g_l = 2 * a_k[..., None, None] * torch.diag_embed(inv_diag) - m_k @ chol  # (B, K, D, D)
        g_l = g_l.reshape(b, k, d * d) @ place.T  # (B, K, M): the lower-triangle entries
        g_p = torch.where(on_diag, g_l * u_p.exp() + jac_diag, g_l)
        value = -(lp + const)
        return value, (-g_w, -g_p, -g_mu)

    def single(u_w, u_p, means):  # one parameter set, as Pyro's NUTS calls it
        value, grads = compute(u_w[None], u_p[None], means[None])
        return value[0], tuple(g[0] for g in grads)

    def fn(params: dict) -> torch.Tensor:
        return _ValueAndGrad.apply(single, params["weights"], params["precisions"],
                                   params["means"])

    fn.batched = compute  # value (B,) and gradients of B parameter sets, for batched samplers
    if x is not None:
        fn.closed_form = {"x": x, "alpha": alpha, "nu": nu, "psi": psi, "beta": beta, "m0": m0,
                          "const": const}
    return fn


def _expand(diag_weight: torch.Tensor, on_diag: torch.Tensor) -> torch.Tensor:
    """The (D,) diagonal Jacobian weights placed at the diagonal entries of a vech (M,)."""
    out = torch.zeros(on_diag.shape[0], dtype=diag_weight.dtype, device=diag_weight.device)
    out[on_diag] = diag_weight
    return out
