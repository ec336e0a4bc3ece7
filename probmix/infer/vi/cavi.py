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

import math
import warnings
from typing import NamedTuple

import numpy as np
import torch
from probmix._progress import progress_bar

from probmix._random import generator, resolve_seed
from probmix._threads import threads_for
from probmix._validation import check_float, check_int
from probmix.io.data import as_data
from probmix.infer.map import em_steps
from probmix.infer.vi.cavi_init import (check_warm_start, given_responsibilities,
                                        map_responsibilities, q_from_fit)
from probmix.exceptions import ConvergenceWarning
from probmix.model import mixture_posterior
from probmix.model import weights as weights_posterior
from probmix.model.gaussian_mixture import GaussianMixture
from probmix.model.mixture_posterior import MixturePosterior
from probmix.results.posterior import fit_from_draws
from probmix.model.priors import ResolvedPrior
from probmix.results.result import Fit

__all__ = ["fit_cavi", "expected_log_joint"]


# --- the two coordinate updates -----------------------------------------------------------------
#
# The global update is the conjugate posterior of the model given the responsibilities' statistics
# (probmix.model.mixture_posterior.update): q is a MixturePosterior (conc, means, beta, shape, inv).

class _Expectations(NamedTuple):
    """What the E-step and the bound need from q: natural weights (K, F), E[Λ] (native)."""

    w: torch.Tensor
    precision: torch.Tensor


def _expectations(family, q: MixturePosterior, stick: bool) -> _Expectations:
    """Expected natural weights: ρ_nk = w_k · Φ(x_n), and E[Λ_k] in the native shape.

    The family's natural weights at the mean m_k and precision E[Λ_k], the bias corrected by
    ½(E log|Λ_k| - log|E Λ_k|) - D/(2β_k) + E[log π_k].
    """
    d = q.means.shape[-1]
    ex = family.expectations(q)
    correction = (0.5 * ex.log_det_gap - 0.5 * d / q.beta
                  + weights_posterior.expected_log_weights(q.conc, stick))  # (K,)
    w = family.natural_weights(q.means, ex.prec_chol, log_weights=correction)  # (K, F)
    return _Expectations(w, ex.precision)


def _kl_globals(family, q: MixturePosterior, ex: _Expectations,
                prior: ResolvedPrior) -> torch.Tensor:
    """KL(q(weights) q(means, precisions) ‖ prior), a scalar."""
    return (weights_posterior.kl_to_prior(q.conc, prior)
            + family.kl_to_prior(q, prior, mean_precision=ex.precision))


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
    if family.conjugate is None:
        raise ValueError(f"CAVI needs a covariance family with a conjugate posterior (its "
                         f"`conjugate` attribute); got {family!r}. Use engine='svi', "
                         "method='stochastic'.")
    prior = model.resolve_prior(x)
    if prior is None:
        raise ValueError("CAVI needs a proper prior; got prior='flat' (improper flat priors have "
                         "no variational posterior). Use prior='default' or a probmix.Prior(...), "
                         "or engine='map' for maximum likelihood.")
    n = x.shape[0]
    if warm_start is not None:
        check_warm_start(warm_start, model)
        init_name = "warm_start"
    elif isinstance(init, str):
        if init != "map":
            raise ValueError(f"init must be 'map', responsibilities (N, K) or integer labels "
                             f"(N,); got {init!r}.")
        init_name = "map"
    else:
        resp0, init_name = given_responsibilities(init, n, k, x)

    with threads_for(x.numel() * k):
        if init_name == "map":
            resp0 = map_responsibilities(model, x, seed)
        data = em_steps.PreparedData(x, family)
        if init_name == "warm_start":
            resp0 = q_from_fit(warm_start, data.shift, data.scale)
        q, history, converged = _iterate(family, data, resp0,
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
        draws = _draw(family, q, prior.stick_breaking, num_draws, seed)
    params, missing = _posterior_means(family, q, prior.stick_breaking)
    shape_name, inv_name = family.conjugate.names
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
                          reference={key: params[key].detach().cpu().numpy()
                                     for key in ("means", "weights", "precisions")},
                          params={key: v.detach().cpu().numpy() for key, v in params.items()},
                          converged=converged, n_iter=len(history),
                          lower_bounds=history / n, losses=-history, options=options)


def _iterate(family, data: em_steps.PreparedData, resp0: torch.Tensor,
             prior: ResolvedPrior, *, max_iter: int, tol: float, verbose: bool,
             reg_covar: float = 0.0):
    """Global update from ``resp0`` (N, K) (or start at ``resp0`` if it is a ``MixturePosterior``), then local
    and global updates until converged.

    Everything is in the standardised coordinates of ``data`` (``prior`` and ``reg_covar``
    mapped to them).
    Returns the final q, the history (T,) of the total ELBO in the units of the original data,
    and whether it converged.
    """
    if isinstance(resp0, MixturePosterior):  # a warm start: q itself
        q = resp0
    else:
        resp_t = resp0.T[None]  # (1, K, N)
        s = em_steps.stats_from_responsibilities(data, lambda rows: resp_t[:, :, rows])[0]
        q = mixture_posterior.update(family, s, prior, ridge=reg_covar)  # (K, F) statistics -> q
    ex = _expectations(family, q, prior.stick_breaking)
    history, converged = [], False
    bar = progress_bar(total=max_iter, desc="CAVI", enabled=verbose, at_most=True)
    for _ in range(max_iter):
        stats = em_steps.e_step(data, ex.w[None])  # local update: q(z) and its statistics
        s = stats.s[0]  # (K, F)
        neg_entropy = (ex.w * s).sum() - stats.log_lik[0]  # Σ_nk r log r = Σ r ρ - Σ_n lse_n
        q = mixture_posterior.update(family, s, prior, ridge=reg_covar)  # global update
        ex = _expectations(family, q, prior.stick_breaking)
        elbo = ((ex.w * s).sum() - neg_entropy - _kl_globals(family, q, ex, prior)
                + data.log_jacobian())
        history.append(float(elbo))
        bar.update(1)
        bar.set_postfix(elbo=f"{history[-1]:.8g}")
        if len(history) > 1 and abs(history[-1] - history[-2]) < tol * data.n:
            converged = True
            break
    bar.close()
    return q, np.asarray(history), converged


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
    q = q_from_fit(fit, center, fit.scale)  # in the fit's standardised coordinates
    ex = _expectations(family, q, stick=q.conc.ndim == 2)
    data = em_steps.PreparedData(x, family, shift=center, scale=fit.scale, cache_bytes=0)
    return em_steps.log_joint(data, ex.w) - data.d * math.log(fit.scale)  # (N, K)


def _posterior_means(family, q: MixturePosterior, stick: bool):
    """Exact E_q of weights (K,), means (K, D), covariances and precisions (native).

    Where E[Σ_k] does not exist (ν_k <= D + 1, or a <= 1) the covariance is (E[Λ_k])⁻¹; the
    list of those components is returned too.
    """
    k = q.means.shape[0]
    cov, exists = family.mean_covariance(q)
    params = {"weights": weights_posterior.mean_weights(q.conc, stick), "means": q.means,
              "covariances": cov, "precisions": family.expectations(q).precision}
    # components whose E[Σ_k] does not exist (in some feature, for diag; all of them if tied)
    exists = exists.reshape(exists.shape[0] if exists.ndim else 1, -1).all(-1).expand(k)
    return params, torch.nonzero(~exists).flatten().tolist()


def _draw(family, q: MixturePosterior, stick: bool, num_draws: int, seed: int) -> dict:
    """``num_draws`` draws from q of weights, means and precisions, each shaped (1, S, ...)."""
    gen = generator(seed, q.means.device)
    batch = MixturePosterior(*(v.expand(num_draws, *v.shape) for v in q))  # S copies of q
    log_w, means, prec_chol = mixture_posterior.draw(family, batch, stick, gen)
    return {"weights": log_w.exp()[None], "means": means[None],
            "precisions": family.precision_from_cholesky(prec_chol)[None]}
