"""The batched torch loop of closed-form EM, and its stopping rule.

All restarts advance together as one batched tensor computation (:func:`iterate`); a
restart that has converged is frozen. Used by :func:`probmix.infer.map.em.fit_em` for
everything the compiled small-data kernel (:mod:`probmix.infer.map.em_compiled`) does not
serve: priors, streaming and distributed data, GPUs, large data.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probmix._progress import progress_bar
from probmix.infer.map import em_steps
from probmix.infer.map.em_init import global_covariance

__all__ = ["iterate", "ridge_held", "STOP_RULES", "DEFAULT_TOL", "RESEED_PATIENCE"]

#: iterations a restart may keep re-seeding an empty component with a settled objective
RESEED_PATIENCE = 20


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


def ridge_held(family, cov, reg, k: int, d: int) -> torch.Tensor:
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


def iterate(model, data, prior, prior_s, weights, means, cov, prec_chol, ok, *, reg_s,
            min_count, max_iter, tol, stop, check_held, progress):
    """EM's iterations in torch, every restart batched, from the initial parameters.

    Returns weights, means, cov, ok, converged, n_iter, held and the history (T, R) of the
    objective per unit weight before each M-step (see fit_em).
    """
    family, k = model.family, model.n_components
    x = data.shift  # only its device and dtype are used below
    r = weights.shape[0]

    active = ok.clone()  # restarts still iterating
    converged = torch.zeros(r, dtype=torch.bool, device=x.device)
    n_iter = torch.zeros(r, dtype=torch.long, device=x.device)
    history = []  # (R,) objective per unit weight, before each M-step
    previous = torch.full((r,), -math.inf, dtype=x.dtype, device=x.device)
    before = previous.clone()  # the objective two iterations back (Aitken's rule)
    held = torch.zeros(r, dtype=torch.bool, device=x.device)  # collapsing onto the ridge
    reseeding = torch.zeros(r, dtype=torch.long, device=x.device)
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
        settled = step & _stopped(stop, tol, current, previous, before)
        done = settled & ~empty.any(-1)
        # a component that empties again after every re-seeding holds no data: once the
        # objective has settled for RESEED_PATIENCE such iterations, stop (not converged)
        reseeding = torch.where(settled & empty.any(-1), reseeding + 1, 0)
        converged |= done
        before, previous = previous, current
        if check_held and t % 10 == 9 and bool(active.any()):  # restarts on a singularity stop
            held |= active & ridge_held(family, cov, reg_s, k, data.d)
            active = active & ~held
        active = active & ~done & ok & (reseeding < RESEED_PATIENCE)
        if progress:
            bar.update(1)
            bar.set_postfix(objective=f"{float(current[ok].max()) if bool(ok.any()) else -math.inf:.6g}")
        if not bool(active.any()):
            break
    bar.close()
    return weights, means, cov, ok, converged, n_iter, held, torch.stack(history)


