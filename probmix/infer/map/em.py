"""The MAP engine for the Gaussian mixture: closed-form EM.

Maximises log p(x | θ) + log p(θ) for the prior declared by the model (the
likelihood alone for ``prior="flat"``). The E-step and M-step are the pure
functions of :mod:`probmix.infer.map.em_steps`; this module owns the options,
initialisation, the choice of the best restart and the result. The iterations (and
their stopping rule, re-seeding of empty components and the check for components held
up by the ridge) run in the batched torch loop of :mod:`probmix.infer.map.em_torch`, or
for small maximum-likelihood fits in the compiled kernel of
:mod:`probmix.infer.map.em_compiled`; both reach the same optimum.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

import torch
from probmix._random import resolve_seed
from probmix._validation import check_float, check_int
from probmix.model.covariance import raise_if_degenerate
from probmix.infer.map import em_compiled, em_steps, em_torch
from probmix.infer.map.em_torch import DEFAULT_TOL, STOP_RULES
from probmix.infer.map.em_init import (INITS, distinct_rows, init_params, initial_labels,
                                      is_partition)
from probmix.infer.map.em_data import auto_restarts, check_memory, prepare, ridge
from probmix.infer.map.em_streaming import StreamedData
from probmix.exceptions import ConvergenceWarning
from probmix.model.gaussian_mixture import GaussianMixture
from probmix.model.priors import Prior
from probmix.results.result import Fit

__all__ = ["fit_em_start", "fit_em", "start_em", "finish_em", "EMStart",
           "best_restart", "checked_loop_options", "fit_options", "INITS"]


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
    compiled="auto",
) -> Fit:
    """MAP estimate of a :class:`GaussianMixture` by closed-form EM.

    Parameters
    ----------
    model : GaussianMixture
    x : array-like (N, D)
    init : {"auto", "hc", "mclust", "kmeans", "k-means++", "random", "random_from_data"} or dict
        "auto" (default): the model-based hierarchical starts of Ward's (EII) tree and of
        mclust's VVV tree (where it is built: 10 rows per feature, at most 20 features) plus
        ``n_init`` k-means++ starts, batched; "hc": Ward's tree's start alone (built on at
        most 2,000 rows); "mclust": mclust's own start alone, the VVV tree's (Ward's where
        it is not built), so that EM follows mclust's ``Mclust(X)``; "kmeans": Lloyd from
        k-means++ seeds; "k-means++": the nearest seed; "random": uniform random
        responsibilities; "random_from_data": means at random rows. A dict gives the initial
        ``weights`` (K,), ``means`` (K, D) and ``covariances``; with a leading (R,) dimension
        it gives R restarts. An integer array (N,) or (R, N) gives hard partitions of the
        rows (labels 0..K-1), one restart each. See :mod:`probmix.infer.map.em_init`.
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
    compiled : {"auto", True, False}
        Run the iterations in the compiled small-data kernel (:mod:`probmix.infer.map.em_compiled`:
        maximum likelihood, in-memory CPU float64 data): "auto" (default) when the data are
        small and the kernel is already compiled (``select`` compiles it, once per
        installation, about 20 s); True whenever it can serve the fit; False never.

    Returns
    -------
    Fit
        ``engine="map"``, ``converged``, ``n_iter`` and ``lower_bounds`` (objective per unit
        weight before each M-step, of the best restart).
        ``options["compiled"]`` says whether the compiled kernel ran the iterations.
        ``options["ridge_held"]`` says whether a component of the returned fit is the ridge
        alone in some direction (a singular scatter: the likelihood is bounded by
        ``reg_covar`` only; mclust reports such fits as NA).
    """
    if not isinstance(model, GaussianMixture):
        raise TypeError(f"model must be a probmix.GaussianMixture; got {type(model).__name__}.")
    k = model.n_components
    if n_init is not None:
        n_init = check_int(n_init, "n_init", minimum=1)
    max_iter, tol, stop, reg_covar, seed = checked_loop_options(
        max_iter=max_iter, tol=tol, stop=stop, reg_covar=reg_covar, seed=seed,
        compiled=compiled)
    init_size = check_int(init_size, "init_size", minimum=k)
    start = start_em(model, x, init=init, n_init=n_init, max_iter=max_iter, tol=tol, stop=stop,
                     reg_covar=reg_covar, reg_covar_relative=reg_covar_relative, seed=seed,
                     device=device, dtype=dtype, sample_weight=sample_weight,
                     warm_start=warm_start, chunk_size=chunk_size, init_size=init_size,
                     distributed=distributed, compiled=compiled)
    if start.kernel:
        start.run.advance(threads=torch.get_num_threads())
        out = em_compiled.finish_run(start.run, model.family)
    else:
        out = em_torch.iterate(model, start.data, start.prior, start.prior_s, start.weights,
                               start.means, start.cov, start.prec_chol, start.ok,
                               progress=progress, **start.loop)
    return finish_em(start, out)


def checked_loop_options(*, max_iter, tol, stop, reg_covar, seed, compiled):
    """fit_em's iteration options checked (a ValueError naming a bad one) and resolved:
    (max_iter, tol, stop, reg_covar, seed) with the stopping rule's default tol and a seed
    drawn from the OS for None."""
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    if compiled not in ("auto", True, False) or not isinstance(compiled, (str, bool)):
        raise ValueError(f"compiled must be 'auto', True or False; got {compiled!r}.")
    if stop not in STOP_RULES:
        raise ValueError(f"stop must be one of {STOP_RULES}; got {stop!r}.")
    tol = check_float(DEFAULT_TOL[stop] if tol is None else tol, "tol", minimum=0.0)
    reg_covar = check_float(reg_covar, "reg_covar", minimum=0.0)
    return max_iter, tol, stop, reg_covar, resolve_seed(seed)


def best_restart(ok: torch.Tensor, held: torch.Tensor, final: torch.Tensor) -> int:
    """The restart a fit keeps: the best last objective ``final`` (R,) among those whose
    covariances factorise (``ok``) and, if any, are not held up by the ridge alone (a
    component collapsing onto the ridge only grows its likelihood without bound: mclust
    reports NA)."""
    usable = ok & ~held if bool((ok & ~held).any()) else ok
    return int(torch.where(usable, final, torch.full_like(final, -math.inf)).argmax())


@dataclasses.dataclass
class EMStart:
    """What :func:`fit_em` settles before iterating: the prepared data, the prior, the ridge,
    every restart's initial parameters (standardised coordinates, leading (R,); None when
    the kernel computed them, in ``run``), the loop's options and whether the compiled
    kernel runs it (``run``: its :class:`~probmix.infer.map.em_compiled.KernelRun`). :func:`start_em` makes one,
    :func:`finish_em` turns the iterations' outputs into the Fit; ``select`` runs many of
    them in between (:mod:`probmix.infer.map.em_grid`)."""

    model: GaussianMixture
    data: object
    prior: object
    prior_s: object
    reg_s: object
    weights: torch.Tensor
    means: torch.Tensor
    cov: torch.Tensor
    prec_chol: torch.Tensor
    ok: torch.Tensor
    loop: dict
    kernel: bool
    options: dict
    run: object = None  # the KernelRun when the compiled kernel iterates


def start_em(model, x, *, init, n_init, max_iter, tol, stop, reg_covar, reg_covar_relative,
             seed, device, dtype, sample_weight, warm_start, chunk_size, init_size,
             distributed, compiled, prepared=None) -> EMStart:
    """fit_em's checks, data preparation and initialisation (arguments as fit_em's; options
    already checked). ``prepared``: the (data, sample, prior, variances) of
    :func:`~probmix.infer.map.em_data.prepare` for in-memory data, when the caller shares
    one preparation between fits of the same rows."""
    k = model.n_components
    check_memory(x, model, init=init, n_init=n_init, dtype=dtype)
    if prepared is None:
        prepared = prepare(model, x, sample_weight=sample_weight, chunk_size=chunk_size,
                           init_size=init_size, distributed=distributed, seed=seed,
                           device=device, dtype=dtype)
    data, sample, prior, variances = prepared
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
    min_count = 1e-3 * data.total_weight / data.n_total  # "empty": less than a thousandth of a row
    labels = None if warm_start is not None else \
        initial_labels(init, sample, k, n_init, seed)  # (R, N) for the partition starts
    run = None
    if labels is not None and em_compiled.applies(data, family, prior, labels.shape[0], k,
                                                  compiled):
        # the compiled EM: its first M-step from the partitions too (no torch at all)
        r = labels.shape[0]
        run = em_compiled.partition_run(data, family, labels.cpu().numpy(), k, reg_s=reg_s,
                                        min_count=min_count, max_iter=max_iter, tol=tol,
                                        stop=stop, check_held=r > 1)
        weights = means = cov = prec_chol = None
        ok = torch.from_numpy(run.ok)
    else:
        weights, means, cov = init_params(model, sample, init if labels is None else labels,
                                           n_init=n_init, seed=seed, prior_s=prior_s,
                                           reg_s=reg_s, warm_start=warm_start)
        prec_chol, ok = em_steps.factorise(family, cov)
        r = weights.shape[0]
    raise_if_degenerate(ok, reg_covar)
    if is_partition(init):
        n_init = r  # one restart per partition given
    loop = dict(reg_s=reg_s, min_count=min_count, max_iter=max_iter, tol=tol, stop=stop,
                check_held=r > 1)
    kernel = run is not None or em_compiled.applies(data, family, prior, r, k, compiled)
    options = fit_options(data, n_init=n_init, init=init, max_iter=max_iter, tol=tol,
                          stop=stop, reg_covar=reg_covar, reg_covar_relative=reg_covar_relative,
                          seed=seed, kernel=kernel, chunk_size=chunk_size, init_size=init_size)
    if kernel and run is None:  # given parameters (or random starts) in the kernel
        run = em_compiled.start_run(data, family, weights, means, cov, ok, **loop)
    return EMStart(model=model, data=data, prior=prior, prior_s=prior_s, reg_s=reg_s,
                   weights=weights, means=means, cov=cov, prec_chol=prec_chol, ok=ok,
                   loop=loop, kernel=bool(kernel), options=options, run=run)


def fit_options(data, *, n_init, init, max_iter, tol, stop, reg_covar, reg_covar_relative,
                seed, kernel, chunk_size, init_size) -> dict:
    """The options a fit records (``fit.options``, before finish_em adds ``ridge_held``)."""
    return dict(method="em", n_init=n_init,
                init=init if isinstance(init, str) else "partition" if is_partition(init)
                else "given",
                max_iter=max_iter, tol=tol, stop=stop, reg_covar=reg_covar,
                reg_covar_relative=reg_covar_relative, seed=seed, compiled=bool(kernel),
                **({} if chunk_size is None and not isinstance(data, StreamedData)
                   else {"chunk_size": data.source.chunk_size, "init_size": init_size}),
                **({"world_size": data.reducer.world_size} if data.reducer.distributed
                   else {}))


def finish_em(start: EMStart, out, *, stop: str | None = None, tol: float | None = None) -> Fit:
    """The Fit of the best restart from the iterations' outputs (weights, means, cov, ok,
    converged, n_iter, held, history), with fit_em's warnings. ``stop``/``tol`` override the
    stopping rule recorded (``select``'s screening stops with a looser one)."""
    model, data, reg_s = start.model, start.data, start.reg_s
    family, k = model.family, model.n_components
    reg_covar, max_iter = start.options["reg_covar"], start.options["max_iter"]
    stop = start.options["stop"] if stop is None else stop
    tol = start.options["tol"] if tol is None else tol
    weights, means, cov, ok, converged, n_iter, held, final = out
    raise_if_degenerate(ok, reg_covar)
    best = best_restart(ok, held, final[-1])
    in_memory = isinstance(data, em_steps.PreparedData) and not data.reducer.distributed
    distinct = None if bool(converged[best]) or not in_memory else distinct_rows(data.x, k)
    if distinct is not None and distinct < k:  # the reason it could not converge
        warnings.warn(
            f"EM did not converge: x has only {distinct} distinct row(s) for n_components={k}, "
            "so some components cannot hold any data and EM kept re-seeding them. Use "
            f"n_components <= {distinct}.", ConvergenceWarning, stacklevel=4,
        )
    elif bool(held[best]):
        warnings.warn(
            f"EM stopped before converging: every restart has a component whose covariance is "
            f"the reg_covar ridge alone in some direction (it collapsed onto too few rows), "
            f"where the likelihood grows without bound (mclust reports such fits as NA). Use "
            f"fewer components than n_components={k}, a prior (prior='default'), or a larger "
            "reg_covar.", ConvergenceWarning, stacklevel=4,
        )
    elif not bool(converged[best]) and int(n_iter[best]) < max_iter:
        warnings.warn(  # stopped by em_torch.RESEED_PATIENCE
            f"EM stopped before converging: with n_components={k} a component emptied again "
            "after every re-seeding (no rows are more probable under it), so this fit "
            "effectively has fewer components. Use fewer components, or another init.",
            ConvergenceWarning, stacklevel=4,
        )
    elif not bool(converged[best]):
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (last change of the "
            f"objective {float((final[-1, best] - final[-2, best]).abs()) if len(final) > 1 else math.nan:.3g}"
            f", stop={stop!r}, tol={tol:g}). Increase max_iter, raise tol, or try another init.",
            ConvergenceWarning, stacklevel=4,
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
        options={**start.options, "stop": stop, "tol": tol,
                 "ridge_held": bool(em_torch.ridge_held(family, cov[best:best + 1], reg_s, k,
                                                        data.d)[0])},
        device=str(data.shift.device), dtype=str(data.shift.dtype).replace("torch.", ""),
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
