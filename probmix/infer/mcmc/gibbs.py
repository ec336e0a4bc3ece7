"""Blocked Gibbs sampler for the conjugate :class:`~probmix.GaussianMixture` (``method="gibbs"``).

The target is exactly the posterior of the model's Pyro program (its prior
resolved on the data): the sampler alternates two blocks (Diebolt & Robert
1994; Ishwaran & James 2001 for the stick-breaking weights).

1. Assignments given the parameters, for every point at once::

       p(z_n = k | θ, x_n) ∝ π_k N(x_n | μ_k, Λ_k⁻¹)

   computed in log space as Φ(x_n) · W_k (the exponential-family form of
   :mod:`probmix.model.covariance`: one matrix product for all chains and components) and
   drawn by inverting the cumulative distribution with one uniform per point.

2. Parameters given the assignments, from the counts n_k, means x̄_k and scatter
   S_k = Σ_{z_n=k} (x_n - x̄_k)(x_n - x̄_k)ᵀ; with β_k = β₀ + n_k,
   m_k = (β₀ m₀ + n_k x̄_k) / β_k and B_k = β₀ n_k / β_k (x̄_k - m₀)(x̄_k - m₀)ᵀ:

   - full: Λ_k ~ Wishart(ν₀ + n_k, precision_matrix = Ψ₀ + S_k + B_k)
     (μ_k integrated out), then μ_k | Λ_k ~ N(m_k, (β_k Λ_k)⁻¹);
   - tied: Λ ~ Wishart(ν₀ + N, precision_matrix = Ψ₀ + Σ_k (S_k + B_k)), then each μ_k;
   - diag: λ_kd ~ Gamma(ν₀/2 + n_k/2, rate (Ψ₀_dd + S_k,dd + B_k,dd) / 2),
     μ_kd ~ N(m_kd, 1/(β_k λ_kd));
   - spherical: λ_k ~ Gamma(D(ν₀ + n_k)/2, rate (tr Ψ₀ + tr S_k + tr B_k) / 2),
     μ_k ~ N(m_k, I/(β_k λ_k));
   - weights ~ Dirichlet(α + n); with ``weights_prior="dirichlet_process"`` the sticks
     v_j ~ Beta(1 + n_j, γ + Σ_{i>j} n_i), j < K - 1, and weights = stick_breaking(v).

   An empty component (n_k = 0) is drawn from its prior.

3. With the stick-breaking prior, between the two blocks: label-exchange moves on z accepted
   by the ratio of the prior (Papaspiliopoulos & Roberts 2008; see
   :mod:`probmix.infer.mcmc.label_moves`), without which the draws depend on the label order
   of the start.

Chains start in different states (``init="dispersed"``, :mod:`probmix.infer.mcmc.chain_starts`)
so that r_hat can see a chain that stays in the mode it started from.

All chains advance together: every tensor carries a leading chain dimension C.
The parameter block is the conjugate posterior of :mod:`probmix.model.mixture_posterior`
(the same update CAVI uses for q), drawn with :mod:`probmix.model.random_variates`.
Randomness comes only from one ``torch.Generator`` seeded by ``seed``, passed to
every sampler: Wishart draws use the Bartlett decomposition (Bartlett 1933; here
its upper-triangular form, which yields the precision's Cholesky factor
directly), Gamma draws the squeeze method of Marsaglia & Tsang (2000) with a few
candidates per variate (one implementation for every engine, so that all draws,
Gibbs's and CAVI's, follow the generator alone), Beta and Dirichlet draws are
ratios of Gammas, formed in log space so that tiny concentrations do not
underflow.

The parameter block works in float64 (it touches C·K·D² numbers); the
assignment block, which touches C·K·N numbers, runs in the data's dtype, on
data standardised as in EM (:class:`~probmix.infer.map.em_steps.PreparedData`).
"""

from __future__ import annotations

import numpy as np
import torch
from probmix._progress import progress_bar

from probmix._random import generator, resolve_seed
from probmix._validation import check_int
from probmix.io.data import as_data
from probmix.results.diagnostics import check_convergence
from probmix.infer.map.em import fit_em_start
from probmix.infer.map.em_steps import PreparedData
from probmix.infer.mcmc.chain_starts import dispersed_starts
from probmix.infer.mcmc.label_moves import permute_labels
from probmix.model import mixture_posterior
from probmix.model.gaussian_mixture import GaussianMixture, MixtureParams, as_params
from probmix.model.random_variates import log_standard_gamma, wishart_precision_cholesky
from probmix.results.posterior import fit_from_draws
from probmix.model.priors import ResolvedPrior
from probmix.results.result import Fit

__all__ = ["fit_gibbs", "INITS", "log_standard_gamma", "wishart_precision_cholesky"]

INITS = ("dispersed", "map", "prior")

_PARAM_DTYPE = torch.float64  # the parameter block: small tensors, kept in double precision
_EXP_FLOOR = {torch.float64: -700.0, torch.float32: -80.0}  # as em_steps: no subnormal exp()


def _sample_parameters(family, stats: torch.Tensor, prior: ResolvedPrior, gen):
    """One draw of (log π, μ, U) per chain from p(θ | z), given the statistics of z.

    Parameters
    ----------
    stats : Tensor (C, K, F)
        Σ_n onehot(z_n) Φ(x_n): counts, sums and quadratic moments (standardised units).

    Returns
    -------
    log_weights (C, K), means (C, K, D), prec_chol (native shape, leading C)
    """
    post = mixture_posterior.update(family, stats, prior)
    return mixture_posterior.draw(family, post, prior.stick_breaking, gen)


class _Workspace:
    """Buffers of the assignment step, allocated once per run.

    Fresh multi-megabyte tensors at every iteration would be mapped and faulted in anew by
    the allocator each time, which doubles the cost of the step on large data.
    """

    def __init__(self, data: PreparedData, c: int, k: int, dtype):
        opts = dict(dtype=dtype, device=data.x.device)
        size = c * k * min(data.chunk, data.n)
        self.prob, self.cdf = torch.empty(size, **opts), torch.empty(size, **opts)  # (C·K·n,)
        self.u = torch.empty(c * min(data.chunk, data.n), **opts)  # (C·n,)

    def views(self, c: int, k: int, n: int):
        """(C, K, n), (C, K, n) and (C, 1, n) contiguous views for a chunk of n rows."""
        return (self.prob[:c * k * n].view(c, k, n), self.cdf[:c * k * n].view(c, k, n),
                self.u[:c * n].view(c, 1, n))


def _sample_assignments(data: PreparedData, w: torch.Tensor, gen, work: _Workspace,
                        z_out=None) -> torch.Tensor:
    """Draw z for every point and chain from p(z | θ) and return its statistics.

    Parameters
    ----------
    data : PreparedData
    w : Tensor (C, K, F)
        log π_k + log N(x | μ_k, Λ_k) = Φ(x) · w_k, in the data's dtype.
    gen : torch.Generator
    work : _Workspace
    z_out : Tensor (C, N), optional
        Receives the drawn assignments.

    Returns
    -------
    Tensor (C, K, F)
        Σ_n onehot(z_n) Φ(x_n), in float64.
    """
    c, k, f = w.shape
    w_flat = w.reshape(c * k, f)  # (C·K, F)
    floor = _EXP_FLOOR[w.dtype]
    stats = w.new_zeros(c * k, f)  # (C·K, F)
    for rows, phi, _ in data.chunks():
        prob, cdf, u = work.views(c, k, phi.shape[1])
        torch.mm(w_flat, phi, out=prob.view(c * k, -1))  # (C, K, n): log π_k N(x_n | k)
        prob.sub_(prob.amax(1, keepdim=True)).clamp_(min=floor).exp_()  # unnormalised
        torch.cumsum(prob, 1, out=cdf)  # (C, K, n)
        u.uniform_(generator=gen).mul_(cdf[:, -1:])  # (C, 1, n): uniform on [0, total)
        at_or_after = torch.ge(cdf, u, out=cdf)  # (C, K, n): 1.0 where k >= z_n, in place
        onehot = prob  # (C, K, n): 1.0 where k == z_n; reuses prob's memory
        onehot[:, :1] = at_or_after[:, :1]
        torch.sub(at_or_after[:, 1:], at_or_after[:, :-1], out=onehot[:, 1:])
        stats.addmm_(onehot.view(c * k, -1), phi.T)  # (C·K, F)
        if z_out is not None:
            z_out[:, rows] = (k - at_or_after.sum(1)).to(z_out.dtype)  # (C, n)
    return stats.view(c, k, f).to(_PARAM_DTYPE)


# --- initial states -------------------------------------------------------------------------

def _given_state(params, model, data: PreparedData, chains: int, name="init"):
    """Validated initial parameters -> (log π, μ, U) per chain in standardised units."""
    k, family = model.n_components, model.family
    p = as_params(params, family, n_components=k, n_features=data.d, dtype=_PARAM_DTYPE,
                  device=data.x.device)
    batch = p.means.shape[:-2]
    if batch not in ((), (chains,)):
        raise ValueError(
            f"{name} parameters must be one set (means ({k}, {data.d})) or one per chain (means "
            f"({chains}, {k}, {data.d})); got means of shape {tuple(p.means.shape)}.")
    opts = dict(dtype=_PARAM_DTYPE, device=data.x.device)
    weights, means, cov = (v.to(**opts) for v in (p.weights, p.means, p.covariances))
    if batch == ():
        weights, means, cov = (v.expand(chains, *v.shape) for v in (weights, means, cov))
    shift = data.shift.to(_PARAM_DTYPE)
    prec_chol, ok = family.precision_cholesky(cov / data.scale**2)
    if not bool(ok.all()):
        raise ValueError(f"{name}: a covariance is not positive definite.")
    log_w = torch.log(weights.clamp_min(torch.finfo(_PARAM_DTYPE).tiny))  # (C, K)
    return log_w, (means - shift) / data.scale, prec_chol


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__}).")
    return bool(value)


# --- the sampler ----------------------------------------------------------------------------

def fit_gibbs(
    model: GaussianMixture,
    x,
    *,
    num_samples: int = 1000,
    num_warmup: int = 1000,
    num_chains: int = 4,
    init="dispersed",
    thin: int = 1,
    keep_assignments: bool = False,
    relabel: bool = True,
    seed: int | None = 0,
    device=None,
    dtype=None,
    progress: bool = True,
) -> Fit:
    """Posterior draws of a :class:`GaussianMixture` by blocked Gibbs sampling.

    Parameters
    ----------
    model : GaussianMixture
        With a proper conjugate prior ("default" or a :class:`probmix.Prior`); the weights
        may have the Dirichlet or the truncated Dirichlet-process prior.
    x : array-like (N, D)
    num_samples : int
        Draws kept per chain, after warm-up and thinning.
    num_warmup : int
        Iterations discarded at the start of each chain.
    num_chains : int
        Number of chains C, advanced together as one batched computation.
    init : {"dispersed", "map", "prior"} or dict
        "dispersed": chain 0 starts at the MAP solution (EM), every other chain at its own
        random spread-out state (see :mod:`probmix.infer.mcmc.chain_starts`), so that r_hat
        can see a chain stuck in the mode it started from; "map": every chain at the MAP
        solution; "prior": each chain from its own prior draw; a dict of ``weights`` (K,), ``means`` (K, D) and ``covariances`` (native or
        (K, D, D); or ``precisions``) starts every chain there, and with a leading (C,) axis
        gives one start per chain. The first step of each chain draws the assignments.
    thin : int
        Keep every ``thin``-th iteration after warmup.
    keep_assignments : bool
        Also keep the assignment draws z (C, S, N) (int16; int32 for K > 32767), relabelled
        like the parameters, as ``fit.assignment_draws``.
    relabel : bool
        Relabel the draws to the MAP solution's component order (by their means, see
        :mod:`probmix.results.relabel`); False keeps them as drawn, e.g. to show what label switching
        does. Components left empty (stick-breaking weights, or more components than the data
        need) carry means drawn from the prior, which that matching does not discount: check
        such fits with label-invariant summaries (e.g. the sorted weights of each draw).
    seed : int or None
        Seed of the sampler's one ``torch.Generator`` (and of the MAP solution's k-means);
        None draws one from the OS (recorded in ``fit.options["seed"]``).
    device, dtype
        Where and in which precision to run the assignment step (default CPU float64).
    progress : bool
        Show a progress bar over the iterations.

    Returns
    -------
    Fit
        ``engine="mcmc"``, ``converged`` None (a sampler has no tolerance: judge it by r_hat
        and ESS, :meth:`Fit.summary`); ``draws`` ``weights`` (C, S, K), ``means`` (C, S, K, D),
        ``precisions`` and ``covariances`` (C, S, native shape), relabelled; ``params`` their
        posterior means. Warns (:class:`probmix.results.diagnostics.ConvergenceDiagnosticWarning`)
        when r_hat of the weights or means exceeds 1.01.

    Raises
    ------
    ValueError
        ``prior="flat"`` (improper: Gibbs needs the conjugate prior), bad options.
    """
    if not isinstance(model, GaussianMixture):
        raise TypeError(f"model must be a probmix.GaussianMixture for method='gibbs'; got "
                        f"{type(model).__name__}. Use method='nuts' for a custom program.")
    k, family = model.n_components, model.family
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    warmup = check_int(num_warmup, "num_warmup", minimum=0)
    chains = check_int(num_chains, "num_chains", minimum=1)
    thin = check_int(thin, "thin", minimum=1)
    seed = resolve_seed(seed)
    keep_assignments = _check_bool(keep_assignments, "keep_assignments")
    relabel = _check_bool(relabel, "relabel")
    if not (isinstance(init, (dict, MixtureParams)) or (isinstance(init, str) and init in INITS)):
        raise ValueError(f"init must be one of {INITS} or a dict of initial parameters; "
                         f"got {init!r}.")
    if family.conjugate is None:
        raise ValueError(f"method='gibbs' needs a covariance family with a conjugate posterior "
                         f"(its `conjugate` attribute); got {family!r}. Use method='nuts'.")
    x = as_data(x, device=device, dtype=dtype, min_samples=k)
    prior = model.resolve_prior(x)
    if prior is None:
        raise ValueError(
            "method='gibbs' needs the model's conjugate proper prior; prior='flat' is improper "
            "(its posterior may not exist). Use prior='default' or a probmix.Prior(...), or "
            "engine='map' for the maximum-likelihood fit.")

    data = PreparedData(x, family)
    prior_s = prior.affine(data.shift, data.scale)
    prior_s = prior_s._replace(**{name: getattr(prior_s, name).to(_PARAM_DTYPE) for name in
                                  ("alpha", "mean_loc", "mean_precision", "dof", "scale")})
    gen = generator(seed, x.device)
    map_fit = fit_em_start(model, x, seed=seed)  # start of init="map", relabelling reference
    if init == "prior":  # the conditional given no data is the prior
        empty = torch.zeros(chains, k, data.n_phi, dtype=_PARAM_DTYPE, device=x.device)
        log_w, means, prec_chol = _sample_parameters(family, empty, prior_s, gen)
    else:
        start = {key: map_fit.params[key] for key in ("weights", "means", "covariances")} \
            if init in ("map", "dispersed") else init
        if init == "dispersed" and chains > 1:
            others = dispersed_starts(x.to(_PARAM_DTYPE), k, chains - 1, generator=gen)
            others["covariances"] = family.from_full(others["covariances"])
            start = {key: torch.cat([torch.as_tensor(start[key], dtype=_PARAM_DTYPE,
                                                     device=x.device)[None], others[key]])
                     for key in start}  # (C, ...): the MAP first
        log_w, means, prec_chol = _given_state(start, model, data, chains)

    total = warmup + num_samples * thin
    draws = {"weights": log_w.new_empty(chains, num_samples, k),  # (C, S, K)
             "means": means.new_empty(chains, num_samples, *means.shape[1:]),  # (C, S, K, D)
             "precisions": prec_chol.new_empty(chains, num_samples, *prec_chol.shape[1:])}
    z_dtype = torch.int16 if k <= 32767 else torch.int32
    z_draws = torch.empty(chains, num_samples, data.n, dtype=z_dtype, device=x.device) \
        if keep_assignments else None
    work = _Workspace(data, chains, k, x.dtype)
    bar = progress_bar(total=total, desc="Gibbs (warmup)" if warmup else "Gibbs (sampling)",
                       enabled=progress)
    for t in range(total):
        if t == warmup and warmup:
            bar.set_description("Gibbs (sampling)")
        kept = t >= warmup and (t - warmup + 1) % thin == 0
        j = (t - warmup) // thin
        w = family.natural_weights(means, prec_chol, log_weights=log_w)  # (C, K, F)
        stats = _sample_assignments(data, w.to(x.dtype), gen, work,
                                    z_draws[:, j] if kept and keep_assignments else None)
        if prior_s.stick_breaking:  # the labels' order matters to the prior: permute them
            stats, perm = permute_labels(stats, prior_s.alpha[:-1], gen)
            if kept and keep_assignments:
                new_label = torch.argsort(perm, -1)  # (C, K): old label -> new label
                z_draws[:, j] = torch.gather(new_label, 1, z_draws[:, j].long()).to(z_dtype)
        log_w, means, prec_chol = _sample_parameters(family, stats, prior_s, gen)
        if kept:
            draws["weights"][:, j] = log_w.exp()
            draws["means"][:, j] = means
            draws["precisions"][:, j] = family.precision_from_cholesky(prec_chol)
        bar.update(1)
    bar.close()

    shift = data.shift.to(_PARAM_DTYPE)
    draws["means"] = draws["means"] * data.scale + shift  # back to the units of x
    draws["precisions"] = draws["precisions"] / data.scale**2
    draws = {name: v.cpu().numpy() for name, v in draws.items()}
    reference = {key: map_fit.params[key] for key in ("means", "weights", "covariances")}
    z_draws = None if z_draws is None else z_draws.cpu().numpy()
    fit = fit_from_draws(
        model, x, draws, engine="mcmc", reference=reference, relabel=relabel, converged=None,
        n_iter=total, assignment_draws=z_draws,
        options=dict(method="gibbs", num_samples=num_samples, num_warmup=warmup,
                     num_chains=chains,
                     init=init if isinstance(init, str) else "given", thin=thin, seed=seed))
    check_convergence(fit, stacklevel=4)  # stack: check_convergence, fit_gibbs, probmix.fit, user
    return fit
