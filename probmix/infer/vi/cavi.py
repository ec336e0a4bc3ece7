"""Closed-form coordinate-ascent variational inference (CAVI) for the Gaussian mixture.

The exact mean-field optimum q(weights) q(means, precisions) q(z) for the
model's own conjugate prior (the Pyro program of
:class:`probmix.GaussianMixture`), found by alternating the two closed-form
coordinate updates. Notation: responsibilities r_nk = q(z_n = k), counts
N_k = Σ_n r_nk, sums S_k = Σ_n r_nk x_n, prior (α, m₀, β₀, ν₀, Ψ₀) of
:mod:`probmix.model.priors`.

Global update (given q(z))::

    q(weights)        = Dirichlet(α + N)
    q(sticks_j)       = Beta(1 + N_j, γ + Σ_{i>j} N_i),  j < K - 1   (dirichlet_process)
    q(means_k | Λ_k)  = Normal(m_k, (β_k Λ_k)⁻¹),  β_k = β₀ + N_k,  m_k = (β₀ m₀ + S_k) / β_k
    C_k               = Σ_n r_nk x_n x_nᵀ + β₀ m₀ m₀ᵀ - β_k m_k m_kᵀ
                      = N_k Σ̂_k + β₀ N_k / β_k (x̄_k - m₀)(x̄_k - m₀)ᵀ            (PSD, no 1/N_k)
    full:      q(Λ_k) = Wishart(ν_k, W_k),  ν_k = ν₀ + N_k,   W_k⁻¹ = Ψ₀ + C_k
    tied:      q(Λ)   = Wishart(ν, W),      ν   = ν₀ + N,     W⁻¹   = Ψ₀ + Σ_k C_k
    diag:      q(λ_kd) = Gamma(a_kd, b_kd), a_kd = (ν₀ + N_k) / 2,    b_kd = (Ψ₀_dd + C_k,dd) / 2
    spherical: q(λ_k) = Gamma(a_k, b_k),    a_k = D (ν₀ + N_k) / 2,  b_k = (tr Ψ₀ + tr C_k) / 2

Local update (given the global factors), r_nk ∝ exp ρ_nk with::

    ρ_nk = E[log π_k] + ½ E[log |Λ_k|] - D/2 log 2π - D/(2β_k) - ½ (x_n - m_k)ᵀ E[Λ_k] (x_n - m_k)
    E[log π_k] = ψ(α_k + N_k) - ψ(Σ_j α_j + N)                                  (Dirichlet)
               = E[log v_k] + Σ_{j<k} E[log(1 - v_j)],  E[log v_{K-1}] = 0    (sticks)
    Wishart: E[Λ] = ν W,  E[log |Λ|] = Σ_{i<D} ψ((ν - i)/2) + D log 2 + log |W|
    Gamma:   E[λ] = a / b, E[log λ] = ψ(a) - log b

ρ is linear in the features Φ(x) = [1, x, q(x)] of :mod:`probmix.model.covariance`, so
the E-step is :func:`probmix.infer.map.em_steps.e_step` with the *expected*
natural weights (the family's natural weights at the mean m_k and precision
E[Λ_k], the bias corrected by ½(E log|Λ_k| - log|E Λ_k|) - D/(2β_k) + E[log π_k]):
one matrix product per chunk, responsibilities by logsumexp, Cholesky factor
of E[Λ_k] for its log-determinant, as in EM.

Evidence lower bound (the full one, every constant kept, of the density of the
Pyro program)::

    ELBO = Σ_nk r_nk (ρ_nk - log r_nk) - KL(q(weights) ‖ p) - KL(q(means, precisions) ‖ p)
    KL(q(μ, Λ) ‖ p) = KL(q(Λ) ‖ p(Λ))
                    + ½ Σ_k [D (β₀/β_k - 1 - log(β₀/β_k)) + β₀ (m_k - m₀)ᵀ E[Λ_k] (m_k - m₀)]

It is evaluated after each global update (as scikit-learn's lower bound), and
never decreases. Data are handled in standardised coordinates (see
:class:`~probmix.infer.map.em_steps.PreparedData`); the ELBO is reported in the
units of ``x`` (it changes by the log-Jacobian -N D log(scale)).

Differences from scikit-learn's ``BayesianGaussianMixture`` (same priors:
``weight_concentration_prior=α``, ``mean_prior=m₀``, ``mean_precision_prior=β₀``,
``degrees_of_freedom_prior=ν₀``, ``covariance_prior=Ψ₀`` (diag: its diagonal,
spherical: tr Ψ₀ / D), ``weight_concentration_prior_type="dirichlet_distribution"``,
``reg_covar=0``):

- full: identical updates; the q parameters map as ``degrees_of_freedom_ = ν_k``,
  ``covariances_ = W_k⁻¹ / ν_k``, ``mean_precision_ = β_k``, ``means_ = m_k``. Its
  ``lower_bound_`` drops constants: ours = sklearn's + log Γ(Σα) - Σ log Γ(α_k)
  + K [ν₀/2 log|Ψ₀| - ν₀D/2 log 2 - Σ_{i<D} log Γ((ν₀ - i)/2) + D/2 log β₀] - ND/2 log 2π.
- tied: scikit-learn uses ν = ν₀ + N/K and W⁻¹ = Ψ₀ + (1/K) Σ_k C_k, which is not the
  coordinate update of a model with one Wishart-distributed shared precision (it
  coincides for K = 1 only). Here ν = ν₀ + N and W⁻¹ = Ψ₀ + Σ_k C_k, the exact update.
- diag and spherical: the q(means, precisions) update is the same
  (``degrees_of_freedom_`` = 2a for diag, 2a/D for spherical, ``covariances_`` = b/a),
  but scikit-learn's E-step uses the Wishart E[log|Λ|] = Σ_{i<D} ψ((ν - i)/2) + ...,
  which is not the expectation under its own product of independent Gammas. Here
  E[log|Λ_k|] = Σ_d ψ(a_kd) - log b_kd (diag) and D (ψ(a_k) - log b_k) (spherical),
  exactly, so the fixed points differ.
- Dirichlet process: scikit-learn breaks K sticks and renormalises the weights; the
  program here breaks K - 1 sticks and gives the remainder to the last component (a
  proper truncation), so q(weights) is exact for it.
- scikit-learn adds ``reg_covar`` to every scatter matrix; CAVI adds nothing by default (the
  prior's Ψ₀ keeps every W_k⁻¹ positive definite); its ``reg_covar`` option adds the same ridge. scikit-learn's default
  ``weight_concentration_prior`` is 1/K, probmix's default α is 1.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import NamedTuple

import numpy as np
import torch
from torch.distributions import Beta, Dirichlet, Gamma, kl_divergence
from tqdm.auto import tqdm

from probmix._random import generator, resolve_seed
from probmix._threads import threads_for
from probmix._validation import check_float, check_int
from probmix.model.covariance import (CovarianceFamily, DiagCovariance, FullCovariance,
                                SphericalCovariance, TiedCovariance)
from probmix.io.data import as_data
from probmix.infer.map import em_steps
from probmix.exceptions import ConvergenceWarning, DegenerateCovarianceError
from probmix.model.gaussian_mixture import GaussianMixture, stick_breaking
from probmix.results.posterior import fit_from_draws
from probmix.model.priors import Prior, ResolvedPrior
from probmix.results.result import Fit

__all__ = ["fit_cavi", "expected_log_joint"]


# --- the precision factor q(Λ) of each covariance family ----------------------------------------

def _multi_digamma(x: torch.Tensor, d: int) -> torch.Tensor:
    """ψ_D(x) = Σ_{i<D} ψ(x - i/2), elementwise over x (...,)."""
    half = torch.arange(d, dtype=x.dtype, device=x.device) / 2
    return torch.digamma(x[..., None] - half).sum(-1)


class _WishartFactor:
    """q(Λ) = Wishart(ν, W) for full (one per component) and tied (shared) precisions.

    Parameters are stored as ``shape`` = ν ((K,) or ()) and ``inv`` = W⁻¹ ((K, D, D) or
    (D, D)): both update additively (see the module docstring).
    """

    def __init__(self, tied: bool):
        self.tied = tied

    def names(self):
        return "dof", "inverse_scale"

    def update(self, prior: ResolvedPrior, nk: torch.Tensor, scatter: torch.Tensor, d: int):
        """(ν, W⁻¹) from counts nk (K,) and the family's native scatter C."""
        n = nk.sum(-1) if self.tied else nk  # () or (K,)
        return prior.dof + n, prior.scale + scatter

    def inverse_mean_precision(self, shape, inv):
        """(E[Λ])⁻¹ = W⁻¹ / ν in the native covariance shape."""
        return inv / shape[..., None, None]

    def log_det_gap(self, shape, inv, d: int):
        """E[log |Λ|] - log |E[Λ]| = ψ_D(ν/2) + D log 2 - D log ν, shape (K,) or ()."""
        return _multi_digamma(shape / 2, d) + d * math.log(2.0) - d * torch.log(shape)

    def kl(self, shape, inv, prior: ResolvedPrior, d: int) -> torch.Tensor:
        """Σ_k KL(Wishart(ν_k, W_k) ‖ Wishart(ν₀, Ψ₀⁻¹))."""
        nu0, psi0 = prior.dof, prior.scale
        chol = torch.linalg.cholesky(inv)  # (..., D, D): W⁻¹ = L Lᵀ
        log_det_inv = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (...,)
        trace = torch.diagonal(torch.cholesky_solve(psi0.expand_as(inv), chol),
                               dim1=-2, dim2=-1).sum(-1)  # (...,): tr(W Ψ₀)
        log_det_psi0 = torch.logdet(psi0)
        kl = (0.5 * (shape - nu0) * _multi_digamma(shape / 2, d)
              - torch.mvlgamma(shape / 2, d) + torch.mvlgamma(nu0 / 2, d)
              - 0.5 * nu0 * (log_det_psi0 - log_det_inv) + 0.5 * shape * (trace - d))
        return kl.sum()

    def mean_covariance(self, shape, inv, d: int):
        """E[Σ] = W⁻¹ / (ν - D - 1) where ν > D + 1, else (E[Λ])⁻¹ = W⁻¹ / ν; and where it exists.
        """
        exists = shape > d + 1
        denom = torch.where(exists, shape - d - 1, shape)
        return inv / denom[..., None, None], exists

    def sample(self, shape, inv, k: int, d: int, n: int, gen: torch.Generator):
        """n draws of Λ (n, native) and of Λ_k^{-1/2} ε (n, K, D) with ε standard normal.

        Bartlett: with W⁻¹ = L Lᵀ and A lower triangular (A_ii² ~ χ²(ν - i), A_ij ~ N(0, 1)
        below), B = L⁻ᵀ A gives Λ = B Bᵀ ~ Wishart(ν, W) and B⁻ᵀ ε = L A⁻ᵀ ε ~ N(0, Λ⁻¹).
        """
        opts = dict(dtype=inv.dtype, device=inv.device)
        batch = (n,) + tuple(inv.shape[:-2])  # (n, K) or (n,)
        chol = torch.linalg.cholesky(inv)  # (..., D, D)
        dof = shape.expand(batch)[..., None] - torch.arange(d, **opts)  # (n, [K,] D): ν - i
        diag = torch.sqrt(2.0 * torch._standard_gamma(dof / 2, generator=gen))  # (n, [K,] D)
        lower = torch.randn(*batch, d, d, generator=gen, **opts).tril(-1)  # (n, [K,] D, D)
        a = lower + torch.diag_embed(diag)  # (n, [K,] D, D)
        eye = torch.eye(d, **opts)
        l_inv_t = torch.linalg.solve_triangular(chol, eye, upper=False).transpose(-1, -2)
        b = l_inv_t @ a  # (n, [K,] D, D)
        prec = b @ b.transpose(-1, -2)  # (n, [K,] D, D)
        prec = 0.5 * (prec + prec.transpose(-1, -2))
        eps = torch.randn(n, k, d, 1, generator=gen, **opts)  # (n, K, D, 1)
        if self.tied:
            a = a[:, None]  # (n, 1, D, D): one precision for every component
        z = torch.linalg.solve_triangular(a.transpose(-1, -2).expand(n, k, d, d), eps,
                                          upper=True)  # (n, K, D, 1): A⁻ᵀ ε
        return prec, (chol @ z)[..., 0]  # native, (n, K, D)


class _GammaFactor:
    """q(λ) = Gamma(a, b) (shape, rate) per precision entry: diag (K, D) or spherical (K,)."""

    tied = False

    def __init__(self, per_feature: bool):
        self.per_feature = per_feature

    def names(self):
        return "shape", "rate"

    def prior(self, prior: ResolvedPrior, d: int):
        """(a₀, b₀): (ν₀/2, diag(Ψ₀)/2) for diag, (ν₀ D/2, tr Ψ₀ / 2) for spherical."""
        if self.per_feature:
            return 0.5 * prior.dof, 0.5 * torch.diagonal(prior.scale)
        return 0.5 * prior.dof * d, 0.5 * torch.trace(prior.scale)

    def update(self, prior: ResolvedPrior, nk: torch.Tensor, scatter: torch.Tensor, d: int):
        """(a, b) from counts nk (K,) and the family's native scatter C ((K, D) or (K,))."""
        a0, b0 = self.prior(prior, d)
        if self.per_feature:
            return (a0 + 0.5 * nk)[:, None].expand_as(scatter).clone(), b0 + 0.5 * scatter  # (K, D)
        return a0 + 0.5 * d * nk, b0 + 0.5 * scatter  # (K,)

    def inverse_mean_precision(self, shape, inv):
        """(E[λ])⁻¹ = b / a in the native covariance shape."""
        return inv / shape

    def log_det_gap(self, shape, inv, d: int):
        """E[log |Λ_k|] - log |E[Λ_k]|: Σ_d ψ(a_kd) - log a_kd (diag), D (ψ(a_k) - log a_k)."""
        gap = torch.digamma(shape) - torch.log(shape)
        return gap.sum(-1) if self.per_feature else d * gap  # (K,)

    def kl(self, shape, inv, prior: ResolvedPrior, d: int) -> torch.Tensor:
        """Σ KL(Gamma(a, b) ‖ Gamma(a₀, b₀)) over components (and features)."""
        a0, b0 = self.prior(prior, d)
        prior_gamma = Gamma(a0.expand_as(shape), b0.expand_as(inv), validate_args=False)
        return kl_divergence(Gamma(shape, inv, validate_args=False), prior_gamma).sum()

    def mean_covariance(self, shape, inv, d: int):
        """E[1/λ] = b / (a - 1) where a > 1, else (E[λ])⁻¹ = b / a; and where it exists."""
        exists = shape > 1
        return inv / torch.where(exists, shape - 1, shape), exists

    def sample(self, shape, inv, k: int, d: int, n: int, gen: torch.Generator):
        """n draws of λ (n, native) and of λ^{-1/2} ε (n, K, D) with ε standard normal."""
        opts = dict(dtype=inv.dtype, device=inv.device)
        prec = torch._standard_gamma(shape.expand(n, *shape.shape).contiguous(),
                                     generator=gen) / inv  # (n, K[, D])
        prec = prec.clamp_min(torch.finfo(inv.dtype).tiny)
        eps = torch.randn(n, k, d, generator=gen, **opts)  # (n, K, D)
        scale = torch.rsqrt(prec if self.per_feature else prec[..., None])  # (n, K, D or 1)
        return prec, eps * scale


def _factor(family: CovarianceFamily):
    """The q(Λ) helper of a built-in covariance family."""
    for cls, factor in ((FullCovariance, _WishartFactor(tied=False)),
                        (TiedCovariance, _WishartFactor(tied=True)),
                        (DiagCovariance, _GammaFactor(per_feature=True)),
                        (SphericalCovariance, _GammaFactor(per_feature=False))):
        if isinstance(family, cls):
            return factor
    raise ValueError(f"CAVI supports the built-in covariance families (full, diag, spherical, "
                     f"tied); got {family!r}. Use engine='svi', method='stochastic'.")


# --- the variational parameters and the two coordinate updates ----------------------------------

class _Q(NamedTuple):
    """Parameters of q(weights) q(means, precisions).

    conc : (K,) Dirichlet concentration, or (2, K-1) Beta(conc[0], conc[1]) per stick
    means : (K, D) m_k; beta : (K,) β_k
    shape, inv : the precision factor's (ν, W⁻¹) or (a, b), see the factor classes
    """

    conc: torch.Tensor
    means: torch.Tensor
    beta: torch.Tensor
    shape: torch.Tensor
    inv: torch.Tensor


def _weights_update(nk: torch.Tensor, prior: ResolvedPrior) -> torch.Tensor:
    """Dirichlet α + N (K,), or Beta (1 + N_j, γ + Σ_{i>j} N_i) stacked (2, K-1)."""
    if not prior.stick_breaking:
        return prior.alpha + nk  # (K,)
    tail = nk.flip(-1).cumsum(-1).flip(-1)[1:]  # (K-1,): Σ_{i>j} N_i
    return torch.stack([1.0 + nk[:-1], prior.alpha[:-1] + tail])  # (2, K-1)


def _expected_log_weights(conc: torch.Tensor, stick_breaking_prior: bool) -> torch.Tensor:
    """E[log π_k], shape (K,)."""
    if not stick_breaking_prior:
        return torch.digamma(conc) - torch.digamma(conc.sum())  # (K,)
    total = torch.digamma(conc.sum(0))  # (K-1,)
    log_v = torch.digamma(conc[0]) - total  # (K-1,): E[log v_j]
    log_rest = torch.digamma(conc[1]) - total  # (K-1,): E[log(1 - v_j)]
    zero = log_v.new_zeros(1)
    return torch.cat([log_v, zero]) + torch.cat([zero, log_rest.cumsum(0)])  # (K,)


def _mean_weights(conc: torch.Tensor, stick_breaking_prior: bool) -> torch.Tensor:
    """E[π], shape (K,)."""
    if not stick_breaking_prior:
        return conc / conc.sum()
    return stick_breaking(conc[0] / conc.sum(0))  # E[v_k] Π_{j<k} E[1 - v_j]


def _kl_weights(conc: torch.Tensor, prior: ResolvedPrior) -> torch.Tensor:
    """KL(q(weights) ‖ p(weights)), or over the sticks for the stick-breaking prior."""
    if not prior.stick_breaking:
        return kl_divergence(Dirichlet(conc, validate_args=False),
                             Dirichlet(prior.alpha, validate_args=False))
    gamma = prior.alpha[:-1]
    return kl_divergence(Beta(conc[0], conc[1], validate_args=False),
                         Beta(torch.ones_like(gamma), gamma, validate_args=False)).sum()


def _m_step(family, factor, s: torch.Tensor, prior: ResolvedPrior, reg_covar: float = 0.0) -> _Q:
    """The global coordinate update from summed statistics s = Σ_n r_n Φ(x_n), shape (K, F).

    ``reg_covar`` > 0 adds N_k · reg_covar · I to each scatter C_k (scikit-learn's ridge on
    the sample covariance); 0 gives the exact coordinate update.
    """
    d = family.n_features_from_stats(s.shape[-1])
    nk, sx, sq = s[:, 0], s[:, 1:1 + d], s[:, 1 + d:]  # (K,), (K, D), (K, F_q)
    if reg_covar > 0:  # Σ_i q(e_i) is q's image of the identity: I, ones (diag), D (spherical)
        eye = torch.eye(d, dtype=s.dtype, device=s.device)
        sq = sq + reg_covar * nk[:, None] * family.features(eye)[1 + d:].sum(1)  # (K, F_q)
    beta0, m0 = prior.mean_precision, prior.mean_loc
    beta = beta0 + nk  # (K,)
    means = (beta0 * m0 + sx) / beta[:, None]  # (K, D)
    q_m0 = family.features(m0[:, None])[1 + d:, 0]  # (F_q,): q(m₀)
    # C_k = Σ r x xᵀ + β₀ m₀ m₀ᵀ - β_k m_k m_kᵀ: the scatter with β_k as count, β_k m_k as sum
    scatter = family.scatter(beta, beta[:, None] * means, sq + beta0 * q_m0)  # native
    shape, inv = factor.update(prior, nk, scatter, d)
    return _Q(_weights_update(nk, prior), means, beta, shape, inv)


class _Expectations(NamedTuple):
    """What the E-step and the bound need from q: natural weights (K, F), E[Λ] (native)."""

    w: torch.Tensor
    precision: torch.Tensor


def _expectations(family, factor, q: _Q, prior: ResolvedPrior) -> _Expectations:
    """Expected natural weights: ρ_nk = w_k · Φ(x_n), and E[Λ_k] in the native shape."""
    k, d = q.means.shape
    prec_chol, ok = family.precision_cholesky(factor.inverse_mean_precision(q.shape, q.inv))
    if not bool(ok.all()):
        raise DegenerateCovarianceError(
            "CAVI: a variational scale matrix is not positive definite (W⁻¹ = Ψ₀ + scatter lost "
            "definiteness to rounding). Rescale the data or pass a better conditioned "
            "Prior(scale=...)."
        )
    w = family.natural_weights(q.means, prec_chol)  # (K, F): at mean m_k, precision E[Λ_k]
    gap = factor.log_det_gap(q.shape, q.inv, d).expand(k)  # (K,)
    w[:, 0] += (0.5 * gap - 0.5 * d / q.beta
                + _expected_log_weights(q.conc, prior.stick_breaking))
    return _Expectations(w, family.precision_from_cholesky(prec_chol))


def _kl_globals(family, factor, q: _Q, ex: _Expectations, prior: ResolvedPrior) -> torch.Tensor:
    """KL(q(weights) q(means, precisions) ‖ prior), a scalar."""
    d = q.means.shape[-1]
    ratio = prior.mean_precision / q.beta  # (K,)
    diff = q.means - prior.mean_loc  # (K, D)
    quad = (family.precision_times(ex.precision, diff) * diff).sum(-1)  # (K,): diffᵀ E[Λ] diff
    kl_means = 0.5 * (d * (ratio - 1 - torch.log(ratio)) + prior.mean_precision * quad).sum()
    return _kl_weights(q.conc, prior) + factor.kl(q.shape, q.inv, prior, d) + kl_means


# --- initialisation -----------------------------------------------------------------------------

def _map_responsibilities(model: GaussianMixture, x: torch.Tensor, seed: int) -> torch.Tensor:
    """p(z | x, θ_MAP) from closed-form EM, shape (N, K).

    MAP needs α >= 1; for a sparser weight prior the MAP start uses α = 1 instead.
    """
    from probmix.infer.map.em import fit_em

    start = model
    if bool((model.resolve_prior(x).alpha < 1).any()):
        base = model.prior if isinstance(model.prior, Prior) else Prior()
        start = GaussianMixture(model.n_components, covariance=model.family,
                                prior=dataclasses.replace(base, weight_concentration=None),
                                weights_prior=model.weights_prior)
    with warnings.catch_warnings():  # only a starting point: EM's own tolerance is moot
        warnings.simplefilter("ignore", ConvergenceWarning)
        em = fit_em(start, x, seed=seed)
    return torch.as_tensor(em.predict_proba(x), dtype=x.dtype, device=x.device)


def _given_responsibilities(init, n: int, k: int, x: torch.Tensor):
    """Validate ``init`` given as responsibilities (N, K) or integer labels (N,).

    Returns the responsibilities (N, K) and what was given ("labels" or "responsibilities").
    """
    values = init.detach().cpu().numpy() if isinstance(init, torch.Tensor) else np.asarray(init)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"init must be 'map', responsibilities (N, K) or integer labels (N,); "
                        f"got an array of dtype {values.dtype}.")
    if values.shape == (n,):
        if values.dtype.kind not in "iu":
            raise ValueError(f"init of shape ({n},) must hold integer labels in [0, {k}); got "
                             f"dtype {values.dtype}. Pass labels.astype(int), or (N, K) "
                             "responsibilities.")
        if values.min() < 0 or values.max() >= k:
            raise ValueError(f"init labels must lie in [0, {k}) for {k} components; got values "
                             f"from {values.min()} to {values.max()}.")
        resp = torch.nn.functional.one_hot(torch.as_tensor(values, dtype=torch.long), k)
        return resp.to(dtype=x.dtype, device=x.device), "labels"  # (N, K)
    if values.shape != (n, k):
        raise ValueError(f"init must be 'map', responsibilities of shape ({n}, {k}) or labels of "
                         f"shape ({n},) for {n} rows and {k} components; got shape "
                         f"{values.shape}.")
    values = values.astype(np.float64)
    sums = values.sum(1)
    if not np.isfinite(values).all() or (values < 0).any() or not np.all(
            np.isclose(sums, 1.0, atol=1e-6) | (sums == 0)) or not sums.any():
        raise ValueError("init responsibilities must be finite, non-negative and sum to 1 in "
                         "every row, or be 0 in a whole row to leave it out of the first update "
                         "(probabilities, not log-probabilities).")
    return torch.as_tensor(values, dtype=x.dtype, device=x.device), "responsibilities"


# --- the engine ---------------------------------------------------------------------------------

def fit_cavi(
    model: GaussianMixture,
    x,
    *,
    init="map",
    max_iter: int = 500,
    tol: float = 1e-8,
    num_draws: int = 1000,
    seed: int | None = 0,
    reg_covar: float = 0.0,
    warm_start: Fit | None = None,
    device=None,
    dtype=None,
    progress: bool = False,
) -> Fit:
    """Mean-field variational posterior of a :class:`GaussianMixture` by closed-form CAVI.

    Parameters
    ----------
    model : GaussianMixture
        With a proper prior ("default" or a :class:`probmix.Prior`); any covariance family;
        Dirichlet or truncated Dirichlet-process weights.
    x : array-like (N, D)
    init : "map", array (N, K) or array (N,) of int
        Initial responsibilities: from the MAP fit of closed-form EM (its ``predict_proba``;
        with α = 1 when the prior's α < 1), given responsibilities (rows sum to 1; a row of
        zeros leaves that point out of the first update, as scikit-learn's "k-means++" and
        "random_from_data" starts do), or hard labels in [0, K). The first update is the
        global one (as scikit-learn).
    max_iter : int
        Maximum number of iterations (each: local update, then global update).
    tol : float
        Stop when the ELBO changes by less than ``tol`` per data point.
    num_draws : int
        Number of draws from q of the global sites.
    seed : int or None
        Seed of the MAP start and of the draws (a private torch.Generator); None draws one
        from the OS (recorded in ``fit.options["seed"]``).
    reg_covar : float
        Ridge (in the units of ``x``²) added to every sample covariance in the global update,
        i.e. N_k · reg_covar · I to each scatter C_k, as scikit-learn's
        ``BayesianGaussianMixture``. Default 0: the exact coordinate update (the prior's Ψ₀
        already keeps every W_k⁻¹ positive definite); a ridge makes each update only
        approximately optimal, so the ELBO may then dip by about the ridge's size.
    warm_start : Fit, optional
        A previous CAVI fit of a model with the same K and covariance family: start from its
        q (the first iteration is then a local update on ``x``, as scikit-learn's warm start);
        ``init`` is ignored.
    device, dtype
        Where and in which precision to compute (default CPU float64).
    progress : bool
        Show a progress bar.

    Returns
    -------
    Fit
        ``engine="svi"``; ``params`` the exact posterior means under q: ``weights`` E[π] (K,),
        ``means`` m_k (K, D), ``covariances`` E[Σ_k] in the native shape (W_k⁻¹/(ν_k - D - 1),
        or b/(a - 1); where that mean does not exist, ν_k <= D + 1 or a <= 1, the inverse of
        E[Λ_k] instead, listed in ``options["covariance_mean_missing"]``), ``precisions``
        E[Λ_k] (native: ν_k W_k or a/b); ``draws`` weights
        (1, S, K), means (1, S, K, D), precisions and covariances (1, S, native);
        ``lower_bounds`` the ELBO per data point after each iteration, ``losses`` minus the
        total ELBO; ``options["variational"]`` the parameters of q as numpy arrays
        (``weight_concentration`` (K,) or ``sticks_concentration1``/``sticks_concentration0``
        (K-1,), ``means``, ``mean_precision`` (K,), and ``dof``/``inverse_scale`` (Wishart ν,
        W⁻¹) or ``shape``/``rate`` (Gamma a, b)), ``options["elbo"]`` the final total ELBO.

    Raises
    ------
    ValueError
        A flat prior, or an ``init`` of the wrong shape or values.
    """
    if not isinstance(model, GaussianMixture):
        raise TypeError(f"model must be a probmix.GaussianMixture; got {type(model).__name__}. "
                        "For a custom program use engine='svi', method='stochastic'.")
    k = model.n_components
    x = as_data(x, device=device, dtype=dtype, min_samples=k)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_float(tol, "tol", minimum=0.0)
    num_draws = check_int(num_draws, "num_draws", minimum=1)
    seed = resolve_seed(seed)
    verbose = bool(progress)  # the name the iteration below uses
    reg_covar = check_float(reg_covar, "reg_covar", minimum=0.0)
    family = model.family
    factor = _factor(family)
    prior = model.resolve_prior(x)
    if prior is None:
        raise ValueError("CAVI needs a proper prior; got prior='flat' (improper flat priors have "
                         "no variational posterior). Use prior='default' or a probmix.Prior(...), "
                         "or engine='map' for maximum likelihood.")
    n = x.shape[0]
    if warm_start is not None:
        _check_warm_start(warm_start, model)
        init_name = "warm_start"
    elif isinstance(init, str):
        if init != "map":
            raise ValueError(f"init must be 'map', responsibilities (N, K) or integer labels "
                             f"(N,); got {init!r}.")
        init_name = "map"
    else:
        resp0, init_name = _given_responsibilities(init, n, k, x)

    with threads_for(x.numel() * k):
        if init_name == "map":
            resp0 = _map_responsibilities(model, x, seed)
        data = em_steps.PreparedData(x, family)
        if init_name == "warm_start":
            resp0 = _q_from_fit(warm_start, data.shift, data.scale)
        q, history, converged = _iterate(family, factor, data, resp0,
                                         prior.affine(data.shift, data.scale),
                                         max_iter=max_iter, tol=tol, verbose=verbose,
                                         reg_covar=reg_covar / data.scale**2)
        if not converged:
            change = abs(history[-1] - history[-2]) / n if len(history) > 1 else math.nan
            warnings.warn(
                f"CAVI did not converge in max_iter={max_iter} iterations (last change of the "
                f"ELBO per point {change:.3g} > tol={tol:g}). Increase max_iter or raise tol.",
                ConvergenceWarning, stacklevel=3,
            )
        q = q._replace(means=q.means * data.scale + data.shift, inv=q.inv * data.scale**2)
        draws = _draw(factor, q, prior.stick_breaking, num_draws, seed)
    params, missing = _posterior_means(family, factor, q, prior.stick_breaking)
    shape_name, inv_name = factor.names()
    variational = {"means": q.means, "mean_precision": q.beta, shape_name: q.shape,
                   inv_name: q.inv}
    if prior.stick_breaking:
        variational.update(sticks_concentration1=q.conc[0], sticks_concentration0=q.conc[1])
    else:
        variational.update(weight_concentration=q.conc)
    options = dict(method="cavi", init=init_name, max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                   num_draws=num_draws, seed=seed, elbo=float(history[-1]),
                   variational={key: v.detach().cpu().numpy() for key, v in variational.items()},
                   covariance_mean_missing=missing)
    return fit_from_draws(model, x, draws, engine="svi",
                          reference={"means": q.means.cpu().numpy(),
                                     "weights": params["weights"].detach().cpu().numpy()},
                          params={key: v.detach().cpu().numpy() for key, v in params.items()},
                          converged=converged, n_iter=len(history),
                          lower_bounds=history / n, losses=-history, options=options)


def _iterate(family, factor, data: em_steps.PreparedData, resp0: torch.Tensor,
             prior: ResolvedPrior, *, max_iter: int, tol: float, verbose: bool,
             reg_covar: float = 0.0):
    """Global update from ``resp0`` (N, K) (or start at ``resp0`` if it is a ``_Q``), then local
    and global updates until converged.

    Everything is in the standardised coordinates of ``data`` (``prior`` and ``reg_covar``
    mapped to them).
    Returns the final q, the history (T,) of the total ELBO in the units of the original data,
    and whether it converged.
    """
    if isinstance(resp0, _Q):  # a warm start: q itself
        q = resp0
    else:
        resp_t = resp0.T[None]  # (1, K, N)
        s = em_steps.stats_from_responsibilities(data, lambda rows: resp_t[:, :, rows])[0]
        q = _m_step(family, factor, s, prior, reg_covar)  # (K, F) statistics -> q
    ex = _expectations(family, factor, q, prior)
    history, converged = [], False
    bar = tqdm(total=max_iter, desc="CAVI", disable=not verbose, leave=False)
    for _ in range(max_iter):
        stats = em_steps.e_step(data, ex.w[None])  # local update: q(z) and its statistics
        s = stats.s[0]  # (K, F)
        neg_entropy = (ex.w * s).sum() - stats.log_lik[0]  # Σ_nk r log r = Σ r ρ - Σ_n lse_n
        q = _m_step(family, factor, s, prior, reg_covar)  # global update
        ex = _expectations(family, factor, q, prior)
        elbo = ((ex.w * s).sum() - neg_entropy - _kl_globals(family, factor, q, ex, prior)
                + data.log_jacobian())
        history.append(float(elbo))
        bar.update(1)
        bar.set_postfix(elbo=f"{history[-1]:.8g}")
        if len(history) > 1 and abs(history[-1] - history[-2]) < tol * data.n:
            converged = True
            break
    bar.close()
    return q, np.asarray(history), converged


def _check_warm_start(fit, model: GaussianMixture) -> None:
    """Raise unless ``fit`` is a CAVI fit of the same K, covariance family and weights prior."""
    same = (isinstance(fit, Fit) and fit.options.get("method") == "cavi"
            and getattr(fit.model, "family", None) is model.family
            and fit.n_components == model.n_components
            and fit.model.is_dirichlet_process == model.is_dirichlet_process)
    if not same:
        raise ValueError("warm_start must be a CAVI Fit (engine='svi', method='cavi') of a "
                         "GaussianMixture with the same n_components, covariance and "
                         "weights_prior.")


def _q_from_fit(fit: Fit, shift: torch.Tensor, scale: float) -> _Q:
    """The q of a CAVI fit, in the coordinates (x - shift) / scale (tensors like ``shift``)."""
    q_np = fit.options["variational"]
    t = {key: torch.as_tensor(value, dtype=shift.dtype, device=shift.device)
         for key, value in q_np.items()}
    shape_name, inv_name = _factor(fit.model.family).names()
    conc = (torch.stack([t["sticks_concentration1"], t["sticks_concentration0"]])
            if "sticks_concentration1" in t else t["weight_concentration"])
    return _Q(conc, (t["means"] - shift) / scale, t["mean_precision"], t[shape_name],
              t[inv_name] / scale**2)


def expected_log_joint(fit: Fit, x) -> torch.Tensor:
    """The local update on new data: ρ_nk = E_q[log π_k + log N(x_n | μ_k, Λ_k)].

    softmax_k ρ_nk is q(z_n = k), the responsibilities CAVI's next E-step would give (the
    quantity scikit-learn's ``BayesianGaussianMixture`` predicts with); logsumexp_k ρ_nk is a
    lower bound on the log posterior predictive density by Jensen's inequality.

    Parameters
    ----------
    fit : Fit
        A fit of :func:`fit_cavi`.
    x : array-like (N, D)

    Returns
    -------
    Tensor (N, K)
        On the fit's device and dtype.
    """
    if fit.options.get("method") != "cavi":
        raise ValueError(f"fit must come from fit_cavi (engine='svi', method='cavi'); got "
                         f"engine={fit.engine!r}, method={fit.options.get('method')!r}.")
    x = fit._x(x)
    family = fit.model.family
    center = torch.as_tensor(fit.center, dtype=x.dtype, device=x.device)
    q = _q_from_fit(fit, center, fit.scale)  # in the fit's standardised coordinates
    stick = q.conc.ndim == 2
    flag = ResolvedPrior(*([None] * 5), stick_breaking=stick)  # _expectations reads the flag only
    ex = _expectations(family, _factor(family), q, flag)
    data = em_steps.PreparedData(x, family, shift=center, scale=fit.scale, cache_bytes=0)
    return em_steps.log_joint(data, ex.w) - data.d * math.log(fit.scale)  # (N, K)


def _posterior_means(family, factor, q: _Q, stick_breaking_prior: bool):
    """Exact E_q of weights (K,), means (K, D), covariances and precisions (native).

    Where E[Σ_k] does not exist (ν_k <= D + 1, or a <= 1) the covariance is (E[Λ_k])⁻¹; the
    list of those components is returned too.
    """
    k, d = q.means.shape
    cov, exists = factor.mean_covariance(q.shape, q.inv, d)
    inv_prec = factor.inverse_mean_precision(q.shape, q.inv)  # (E[Λ])⁻¹, native
    params = {"weights": _mean_weights(q.conc, stick_breaking_prior), "means": q.means,
              "covariances": cov, "precisions": family.covariance_from_precision(inv_prec)}
    if family.tied:
        missing = [] if bool(exists) else list(range(k))
    else:  # components whose E[Σ_k] does not exist (in some feature, for diag)
        missing = torch.nonzero(~exists.reshape(k, -1).all(-1)).flatten().tolist()
    return params, missing


def _draw(factor, q: _Q, stick_breaking_prior: bool, num_draws: int, seed: int) -> dict:
    """``num_draws`` draws from q of weights, means and precisions, each shaped (1, S, ...)."""
    k, d = q.means.shape
    gen = generator(seed, q.means.device)
    if stick_breaking_prior:
        conc = q.conc.T.expand(num_draws, k - 1, 2).contiguous()  # (S, K-1, 2)
        sticks = torch._sample_dirichlet(conc, generator=gen)[..., 0]  # (S, K-1): Beta draws
        weights = stick_breaking(sticks)  # (S, K)
    else:
        weights = torch._sample_dirichlet(q.conc.expand(num_draws, k).contiguous(),
                                          generator=gen)  # (S, K)
    prec, noise = factor.sample(q.shape, q.inv, k, d, num_draws, gen)  # native, (S, K, D)
    means = q.means + noise * torch.rsqrt(q.beta)[:, None]  # (S, K, D)
    return {"weights": weights[None], "means": means[None], "precisions": prec[None]}
