"""The MAP engine for the Gaussian mixture: closed-form EM.

Maximises log p(x | θ) + log p(θ) for the prior declared by the model (the
likelihood alone for ``prior="flat"``). The E-step and M-step are the pure
functions of :mod:`probmix.infer.map.em_steps`; this module owns initialisation,
the iteration, convergence, re-seeding of empty components and the choice of
the best restart. All ``n_init`` restarts advance together as one batched
tensor computation; a restart that has converged is frozen.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

import torch
from probmix._progress import progress_bar

from probmix._random import resolve_seed
from probmix._validation import check_float, check_int
from probmix.model.covariance import raise_if_degenerate
from probmix.infer.map import em_steps
from probmix.infer.map.em_init import INITS, distinct_rows, global_covariance, init_params
from probmix.infer.map.em_data import auto_restarts, check_memory, prepare, ridge
from probmix.infer.map.em_streaming import StreamedData
from probmix.exceptions import ConvergenceWarning
from probmix.model.gaussian_mixture import GaussianMixture
from probmix.model.priors import Prior
from probmix.results.result import Fit

__all__ = ["fit_em_start", "fit_em", "INITS"]



STOP_RULES = ("aitken", "change")
DEFAULT_TOL = {"aitken": 1e-8, "change": 1e-3}


def _stopped(rule: str, tol: float, current, previous, before) -> torch.Tensor:
    """Which restarts (R,) meet the stopping rule, from the objective of the last three steps.

    "change": |ℓ_t - ℓ_{t-1}| < tol. "aitken": with a = (ℓ_t - ℓ_{t-1}) / (ℓ_{t-1} - ℓ_{t-2})
    the rate of EM's linear convergence, the limit is ℓ_∞ = ℓ_{t-1} + (ℓ_t - ℓ_{t-1}) / (1 - a)
    and the distance still to go ℓ_∞ - ℓ_t = (ℓ_t - ℓ_{t-1}) a / (1 - a); stop when it is
    below tol while 0 <= a < 1, or when ℓ stops increasing (a step in [-tol, 0] is rounding
    at the mode; tol=0 runs every iteration). ℓ is per unit weight, so differences of ℓ are in
    nats per point whatever the units of x: the rule, and so the fit, is the same for rescaled
    data. Computed in NumPy on R numbers (a dozen tiny torch operations cost more than the
    E-step on small data).
    """
    cur, prev, bef = torch.stack([current, previous, before]).cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        step = cur - prev
        if rule == "change":
            out = np.abs(step) < tol
        else:
            last = prev - bef
            rate = step / np.where(last != 0, last, 1.0)
            valid = (last > 0) & (rate >= 0) & (rate < 1) & (step >= 0)
            gap = step * rate / (1 - np.where(valid, rate, 0.0))
            # EM never decreases the objective: a step <= 0 within tol is rounding at the mode
            stalled = (step <= 0) & (np.abs(step) <= tol)
            out = ((valid & (gap <= tol) & (step <= tol)) | stalled) & (tol > 0)
    return torch.from_numpy(out).to(current.device)


def _worst_rows(data, w, count):
    """The rows (R, count, D) (standardised) with the lowest log-density under each parameter set.

    Over all chunks and, in a distributed fit, over all processes.
    """
    r, k, _ = w.shape
    d = data.d
    w_flat = w.reshape(r * k, -1)
    best_val, best_rows = None, None
    for _, phi, _ in data.chunks():
        lse = torch.logsumexp((w_flat @ phi).view(r, k, -1), 1)  # (R, n)
        rows = phi[1:1 + d].T.expand(r, -1, -1)  # (R, n, D): Φ holds x' in rows 1..D
        if best_val is not None:
            lse, rows = torch.cat([best_val, lse], 1), torch.cat([best_rows, rows], 1)
        best_val, pos = torch.topk(-lse, min(count, lse.shape[1]), dim=1)
        best_val, best_rows = -best_val, rows.gather(1, pos[..., None].expand(-1, -1, d))
    if data.reducer.distributed:  # the worst over every process, the same on all of them
        pad = count - best_val.shape[1]
        best_val = torch.cat([best_val, best_val.new_full((r, pad), math.inf)], 1)
        best_rows = torch.cat([best_rows, best_rows.new_zeros(r, pad, d)], 1)
        vals = data.reducer.gather(best_val).permute(1, 0, 2).reshape(r, -1)
        rows = data.reducer.gather(best_rows).permute(1, 0, 2, 3).reshape(r, -1, d)
        best_val, pos = torch.topk(-vals, count, dim=1)
        best_rows = rows.gather(1, pos[..., None].expand(-1, -1, d))
    return best_rows  # (R, count, D)


def _reseed(data, w_old, weights, means, cov, empty, reg):
    """Move empty components onto the worst-explained rows with the global covariance."""
    family = data.family
    k = means.shape[1]
    worst = _worst_rows(data, w_old, k)  # (R, K, D)
    rank = (empty.cumsum(-1) - 1).clamp_min(0)
    rows = worst.gather(1, rank[..., None].expand(-1, -1, worst.shape[-1]))  # (R, K, D)
    means = torch.where(empty[..., None], rows, means)
    mask = family.component_mask(empty)
    if mask is not None:
        cov = torch.where(mask, global_covariance(data, reg, k), cov)
    weights = torch.where(empty, torch.full_like(weights, 1.0 / data.total_weight), weights)
    weights = weights / weights.sum(-1, keepdim=True)
    return weights, means, cov


def _log_prior(model, prior, weights, means, prec) -> torch.Tensor:
    """log p(θ) of the program's (proper) priors at (R,) parameter sets in original units."""
    family = model.family
    if prior.stick_breaking:
        sticks = em_steps.sticks_from_weights(weights)
        gamma = prior.alpha[:-1]
        lp = torch.distributions.Beta(torch.ones_like(gamma), gamma).log_prob(
            sticks.clamp(1e-300, 1 - 1e-16)).sum(-1)
    else:
        lp = torch.distributions.Dirichlet(prior.alpha).log_prob(weights)
    return lp + family.log_prior_density(prior, means, prec)


def _ridge_held(family, cov, reg, k: int, d: int) -> torch.Tensor:
    """Which restarts (R,) have a component whose covariance is the ridge alone in some
    direction (Σ = S + ridge with S singular): the smallest eigenvalue of Σ in units of the
    ridge is 1 there (it is at least 1 always)."""
    if not isinstance(reg, torch.Tensor) and reg <= 0:
        return torch.zeros(cov.shape[0], dtype=torch.bool, device=cov.device)
    full = family.to_full(cov, k, d)  # (R, K, D, D)
    ridge = torch.diagonal(family.to_full(family.add_ridge(torch.zeros_like(cov), reg), k, d),
                           dim1=-2, dim2=-1)  # (R, K, D)
    scale = torch.rsqrt(ridge.clamp_min(torch.finfo(cov.dtype).tiny))  # (R, K, D)
    unit = full * scale[..., :, None] * scale[..., None, :]
    return (torch.linalg.eigvalsh(unit)[..., 0] <= 1 + 1e-3).any(-1)  # (R,)


def fit_em(
    model: GaussianMixture,
    x,
    *,
    init="auto",
    n_init: int | None = None,
    max_iter: int = 1000,
    tol: float | None = None,
    stop: str = "aitken",
    reg_covar: float = 1e-6,
    reg_covar_relative: bool = True,
    seed: int | None = 0,
    device=None,
    dtype=None,
    sample_weight=None,
    warm_start: Fit | None = None,
    progress: bool = False,
    chunk_size: int | None = None,
    init_size: int = 100_000,
    distributed=False,
) -> Fit:
    """MAP estimate of a :class:`GaussianMixture` by closed-form EM.

    Parameters
    ----------
    model : GaussianMixture
    x : array-like (N, D)
    init : {"auto", "hc", "kmeans", "k-means++", "random", "random_from_data"} or dict
        "auto" (default): the model-based hierarchical start ("hc", as mclust's; built on at
        most 2,000 rows) plus ``n_init`` k-means++ starts, batched; "kmeans": Lloyd from
        k-means++ seeds; "k-means++": the nearest seed; "random": uniform random
        responsibilities; "random_from_data": means at random rows. A dict gives the initial
        ``weights`` (K,), ``means`` (K, D) and ``covariances``; with a leading (R,) dimension
        it gives R restarts. See :mod:`probmix.infer.map.em_init`.
    n_init : int, optional
        Number of (k-means++ or random) restarts, run together as one batched computation;
        the best objective wins. Default: 5 with ``init="auto"`` on up to 20,000 rows (on
        the five mclust data sets one k-means++ start missed mclust's optimum in 12 of 240
        (model, K) cases, five in 1), fewer for wide data (so that the batched statistics,
        K·(1 + D + D(D+1)/2) numbers per restart, stay within 64 MiB), else 1.
    max_iter : int
        Maximum number of EM iterations (E-step then M-step).
    tol : float, optional
        Convergence threshold (default 1e-8 for ``stop="aitken"``, 1e-3 for ``"change"``).
    stop : {"aitken", "change"}
        "aitken" (default): stop when Aitken's extrapolation of the objective ℓ (per unit
        weight) says the mode is less than ``tol`` nats per point away (McNicholas et al.
        2010), which is what reaches the mode on overlapping components, where EM crawls;
        "change": stop when ℓ changes by less than ``tol`` (scikit-learn's rule, on the
        mean log-likelihood for a flat prior).
    reg_covar : float
        Ridge added to every covariance estimate, as a fraction of each feature's variance
        (default 1e-6): diag(reg_covar · var(x_j)), so that the fit is equivariant to
        rescaling any feature.
    reg_covar_relative : bool
        False makes ``reg_covar`` absolute, reg_covar · I in the units of x² (scikit-learn's
        ``reg_covar``).
    seed : int or None
        Seed of the initialisation; None draws one from the OS (recorded in
        ``fit.options["seed"]``).
    device, dtype
        Where and in which precision to compute (default CPU float64).
    sample_weight : array-like (N,), optional
        Non-negative per-row weights acting as counts.
    warm_start : Fit, optional
        Start from the parameters of a previous fit of the same model.
    progress : bool
        Show a progress bar.
    chunk_size : int, optional
        Stream ``x`` in chunks of this many rows (out-of-core EM). Implied when ``x`` is a
        streaming source (a memory-mapped array, a .npy path, an HDF5 dataset, a list of
        arrays or a callable returning an iterator: :func:`probmix.io.sources.as_source`); each
        iteration then reads every chunk once and the result is the exact EM fit.
    init_size : int
        Streaming and distributed fits initialise on a uniform random sample of this many rows
        (over all processes), drawn in the pass that also computes the data's moments.
    distributed : bool or process group
        ``True``: this process holds one shard of the rows of a ``torch.distributed`` job
        (see :mod:`probmix.infer.distributed`); statistics are all-reduced and every process ends
        with the same parameters.

    Returns
    -------
    Fit
        ``engine="map"``, ``converged``, ``n_iter`` and ``lower_bounds`` (objective per unit
        weight before each M-step, of the best restart).
        ``options["ridge_held"]`` says whether a component of the returned fit is the ridge
        alone in some direction (a singular scatter: the likelihood is bounded by
        ``reg_covar`` only; mclust reports such fits as NA).
    """
    if not isinstance(model, GaussianMixture):
        raise TypeError(f"model must be a probmix.GaussianMixture; got {type(model).__name__}.")
    k = model.n_components
    if n_init is not None:
        n_init = check_int(n_init, "n_init", minimum=1)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    if stop not in STOP_RULES:
        raise ValueError(f"stop must be one of {STOP_RULES}; got {stop!r}.")
    tol = check_float(DEFAULT_TOL[stop] if tol is None else tol, "tol", minimum=0.0)
    reg_covar = check_float(reg_covar, "reg_covar", minimum=0.0)
    seed = resolve_seed(seed)
    init_size = check_int(init_size, "init_size", minimum=k)
    check_memory(x, model, init=init, n_init=n_init, dtype=dtype)
    data, sample, prior, variances = prepare(model, x, sample_weight=sample_weight, chunk_size=chunk_size,
                                   init_size=init_size, distributed=distributed, seed=seed,
                                   device=device, dtype=dtype)
    x = data.shift  # only its device and dtype are used below
    family = model.family
    if prior is not None and bool((prior.alpha < 1).any()):
        raise ValueError(
            "MAP needs Prior.weight_concentration >= 1 (below 1 the Dirichlet or stick-breaking "
            "density is unbounded at the edge of the simplex, so there is no mode); got "
            f"{prior.alpha.min().item():g}. Use engine='svi' or 'mcmc' for sparse weight priors."
        )
    prior_s = None if prior is None else prior.affine(data.shift, data.scale)
    reg_s = ridge(reg_covar, reg_covar_relative, variances, data.scale)
    if n_init is None:
        n_init = auto_restarts(init, data.n_total, k, data.n_phi, data.shift.element_size())
    weights, means, cov = init_params(model, sample, init, n_init=n_init, seed=seed,
                                       prior_s=prior_s, reg_s=reg_s, warm_start=warm_start)
    prec_chol, ok = em_steps.factorise(family, cov)
    raise_if_degenerate(ok, reg_covar)
    r = weights.shape[0]

    active = ok.clone()  # restarts still iterating
    converged = torch.zeros(r, dtype=torch.bool, device=x.device)
    n_iter = torch.zeros(r, dtype=torch.long, device=x.device)
    history = []  # (R,) objective per unit weight, before each M-step
    previous = torch.full((r,), -math.inf, dtype=x.dtype, device=x.device)
    before = previous.clone()  # the objective two iterations back (Aitken's rule)
    min_count = 1e-3 * data.total_weight / data.n_total  # "empty": less than a thousandth of a row
    held = torch.zeros(r, dtype=torch.bool, device=x.device)  # collapsing onto the ridge
    bar = progress_bar(total=max_iter, desc="EM", enabled=progress, at_most=True)
    for t in range(max_iter):
        w = em_steps.natural_weights(family, weights, means, prec_chol)
        stats = em_steps.e_step(data, w)
        objective = stats.log_lik + data.log_jacobian()
        if prior is not None:
            prec_o = family.precision_from_cholesky(prec_chol) / data.scale**2
            objective = objective + _log_prior(model, prior, weights,
                                               means * data.scale + data.shift, prec_o)
        objective = objective / data.total_weight
        objective = torch.where(ok, objective, torch.full_like(objective, -math.inf))
        current = torch.where(active, objective, previous)
        history.append(current)
        new = em_steps.m_step(family, stats.s, prior=prior_s, reg_covar=reg_s, start=cov)
        new_weights, new_means, new_cov, new_prec_chol, new_ok, nk = new
        empty = (nk < min_count) & active[:, None]
        if bool(empty.any()):
            new_weights, new_means, new_cov = _reseed(data, w, new_weights, new_means, new_cov,
                                                      empty, reg_s)
            new_prec_chol, new_ok = em_steps.factorise(family, new_cov)
        step = active & new_ok
        weights = torch.where(step[:, None], new_weights, weights)
        means = torch.where(step[:, None, None], new_means, means)
        step_cov = step.view(r, *[1] * (cov.ndim - 1))  # broadcasts over native covariances
        cov = torch.where(step_cov, new_cov, cov)
        prec_chol = torch.where(step_cov, new_prec_chol, prec_chol)
        n_iter += step.long()
        ok = ok & (new_ok | ~active)  # a restart whose covariance broke is dropped
        done = step & _stopped(stop, tol, current, previous, before) & ~empty.any(-1)
        converged |= done
        before, previous = previous, current
        if r > 1 and t % 10 == 9 and bool(active.any()):  # restarts on a singularity stop
            held |= active & _ridge_held(family, cov, reg_s, k, data.d)
            active = active & ~held
        active = active & ~done & ok
        if progress:
            bar.update(1)
            bar.set_postfix(objective=f"{float(current[ok].max()) if bool(ok.any()) else -math.inf:.6g}")
        if not bool(active.any()):
            break
    bar.close()
    raise_if_degenerate(ok, reg_covar)

    final = torch.stack(history)  # (T, R)
    # a restart whose component collapsed onto the ridge loses to any healthy one (its
    # likelihood only grows without bound as the component shrinks: mclust reports NA)
    usable = ok & ~held if bool((ok & ~held).any()) else ok
    best = int(torch.where(usable, final[-1], torch.full_like(final[-1], -math.inf)).argmax())
    in_memory = isinstance(data, em_steps.PreparedData) and not data.reducer.distributed
    distinct = None if bool(converged[best]) or not in_memory else distinct_rows(data.x, k)
    if distinct is not None and distinct < k:  # the reason it could not converge
        warnings.warn(
            f"EM did not converge: x has only {distinct} distinct row(s) for n_components={k}, "
            "so some components cannot hold any data and EM kept re-seeding them. Use "
            f"n_components <= {distinct}.", ConvergenceWarning, stacklevel=3,
        )
    elif not bool(converged[best]):
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (last change of the "
            f"objective {float((final[-1, best] - final[-2, best]).abs()) if len(final) > 1 else math.nan:.3g}"
            f", stop={stop!r}, tol={tol:g}). Increase max_iter, raise tol, or try another init.",
            ConvergenceWarning, stacklevel=3,
        )
    t_best = int(n_iter[best])
    params = {
        "weights": weights[best].cpu().numpy(),
        "means": (means[best] * data.scale + data.shift).cpu().numpy(),
        "covariances": (cov[best] * data.scale**2).cpu().numpy(),
    }
    return Fit(
        engine="map", model=model, params=params, n_features=data.d,
        converged=bool(converged[best]), n_iter=t_best,
        lower_bounds=final[:max(t_best, 1), best].cpu().numpy(),
        options=dict(method="em", init=init if isinstance(init, str) else "given", n_init=n_init,
                     max_iter=max_iter, tol=tol, stop=stop, reg_covar=reg_covar,
                     reg_covar_relative=reg_covar_relative, seed=seed,
                     ridge_held=bool(_ridge_held(family, cov[best:best + 1], reg_s, k,
                                                 data.d)[0]),
                     **({} if chunk_size is None and not isinstance(data, StreamedData)
                        else {"chunk_size": data.source.chunk_size, "init_size": init_size}),
                     **({"world_size": data.reducer.world_size} if data.reducer.distributed
                        else {})),
        device=str(x.device), dtype=str(x.dtype).replace("torch.", ""),
        center=data.shift.cpu().numpy(), scale=data.scale,
    )


def fit_em_start(model: GaussianMixture, x, *, seed: int = 0) -> Fit:
    """The MAP solution as a *starting point* (and component order) for the posterior engines.

    A weight concentration below 1 has no MAP weights, so EM then runs with it raised to 1;
    an unconverged EM is still a good start, so its ConvergenceWarning is silenced.
    """
    prior = model.prior
    if isinstance(prior, Prior) and prior.weight_concentration is not None and \
            float(np.min(prior.weight_concentration)) < 1:
        raised = np.maximum(np.asarray(prior.weight_concentration, dtype=np.float64), 1.0)
        model = GaussianMixture(model.n_components, covariance=model.family,
                                prior=dataclasses.replace(prior, weight_concentration=raised),
                                weights_prior=model.weights_prior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_em(model, x, seed=seed)
