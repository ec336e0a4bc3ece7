"""The NUTS engine: the No-U-Turn sampler on a mixture program, z summed out.

Two backends: for a full-covariance GaussianMixture with Dirichlet weights and a proper
prior, chains advance in groups of two on the closed-form potential, compiled with numba on
float64 CPU data (:mod:`probmix.infer.mcmc.nuts_fused`), else batched in torch
(:mod:`probmix.infer.mcmc.nuts_batched`); any other model runs Pyro's NUTS kernel, one chain
per worker process (:mod:`probmix.infer.mcmc.nuts_chain`).

The assignment ``z`` is enumerated (marginalised exactly), so NUTS moves only
in the continuous global sites, mapped to an unconstrained space by each site's
``biject_to``. The potential energy is Pyro's for any program
(:func:`~probmix.infer.mcmc.potential.program_potential`) and the hand-written
equivalent for a :class:`~probmix.GaussianMixture`
(:func:`~probmix.infer.mcmc.potential.gmm_potential`, tested equal to Pyro's), on
standardised data (so step sizes and the mass matrix adapt to unit scales).

Chain 0 starts from the MAP solution plus a small jitter in the unconstrained space,
the others (a GaussianMixture's, ``init="dispersed"``) from spread-out states of their own
(:mod:`probmix.infer.mcmc.chain_starts`; ``init="map"``: all at the MAP, ``init="prior"``:
prior draws). Per-draw statistics, energy included, come from
:func:`~probmix.infer.mcmc.nuts_chain.run_chain`. They run in parallel worker
processes (one torch thread each; as many workers as cores) or one after the
other. Draws are relabelled to the MAP's component order (see
:mod:`probmix.results.relabel`) before any summary; r_hat above 1.01 and divergences
raise a :class:`~probmix.results.diagnostics.ConvergenceDiagnosticWarning` with remedies.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import warnings

import numpy as np
import torch

from probmix._global_state import holds_pyro_lock
from probmix._random import resolve_seed
from probmix._validation import check_float, check_int
from probmix.io.data import as_data
from probmix.infer.map.gradient import map_start
from probmix.infer.mcmc.chain_starts import dispersed_values, initial_points
from probmix.infer.mcmc.nuts_batched import run_batched_chains
from probmix.infer.mcmc.nuts_chain import laplace_inverse_mass, run_chain
from probmix.infer.mcmc.nuts_fused import fused_spec, prepare, run_fused_chains
from probmix.infer.standardize import Standardizer
from probmix.model.gaussian_mixture import GaussianMixture, stick_breaking

__all__ = ["fit_nuts", "run_chain"]

_JOB: dict = {}  # the work a forked worker process picks up (set before forking)


def _worker(index: int, queue, counter):
    torch.set_num_threads(1)

    def progress(n):
        with counter.get_lock():
            counter.value += n
    try:
        queue.put((index, _JOB["task"](index, progress), None))
    except Exception as exc:  # sent to the parent, which raises it
        queue.put((index, None, f"{type(exc).__name__}: {exc}"))


def _run_parallel(task, n_tasks: int, workers: int, bar) -> list:
    """``[task(i, progress) for i in range(n_tasks)]`` in forked worker processes."""
    ctx = mp.get_context("fork")
    _JOB.update(task=task)
    queue, counter = ctx.Queue(), ctx.Value("l", 0)
    results, pending, running = {}, list(range(n_tasks)), []
    try:
        while len(results) < n_tasks:
            while pending and len(running) < workers:
                p = ctx.Process(target=_worker, args=(pending.pop(0), queue, counter), daemon=True)
                p.start()
                running.append(p)
            try:
                index, out, err = queue.get(timeout=0.2)
            except Exception:  # queue.Empty: refresh the bar and wait on
                index = None
            bar.update(counter.value - bar.n)
            if index is None:
                if not pending and not any(p.is_alive() for p in running) and queue.empty():
                    raise RuntimeError("a NUTS worker process died without a result (out of "
                                       "memory?); try chain_method='sequential'.")
                continue
            if err is not None:
                raise RuntimeError(f"NUTS chain {index} failed: {err}")
            results[index] = out
            for p in running:
                p.join(timeout=0.05)
            running = [p for p in running if p.is_alive()]
    finally:
        for p in running:
            p.kill()
        _JOB.clear()
    return [results[i] for i in range(n_tasks)]


_GROUP = 2  # chains per batched group: fixed, so that the draws do not depend on the cores


def _run_batched(batched, potential, inits, seed, kwargs, workers: int, bar, parallel: bool):
    """The batched sampler on groups of ``_GROUP`` chains, in parallel processes if asked."""
    groups = [list(range(i, min(i + _GROUP, len(inits)))) for i in range(0, len(inits), _GROUP)]
    seeds = [int(s) for s in np.random.SeedSequence([seed, 1]).generate_state(len(groups))]
    spec = fused_spec(potential.fn)  # the compiled sampler where it serves, else torch
    if spec is not None:
        prepare(spec)  # compile (or load from the cache) once, before any fork

    def task(g, progress):
        run = run_batched_chains if spec is None else run_fused_chains
        return run(batched if spec is None else spec, [inits[c] for c in groups[g]],
                   constrain=potential.constrain, seed=seeds[g], progress=progress, **kwargs)

    if parallel and workers > 1 and len(groups) > 1:
        per_group = _run_parallel(task, len(groups), workers, bar)
    else:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            per_group = [task(g, bar.update) for g in range(len(groups))]
        finally:
            torch.set_num_threads(before)
    return [r for group in per_group for r in group]


def _program_potential(program, x, start: dict, jit_compile: bool | None):
    """Pyro's potential of a custom program, JIT-traced when asked or when tracing works."""
    from probmix.infer.mcmc.potential import program_potential

    if jit_compile is False:
        return program_potential(program, x, values=start)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            potential = program_potential(program, x, values=start, jit_compile=True)
            params = {n: v.clone().requires_grad_() for n, v in
                      potential.unconstrain(start).items()}
            torch.autograd.grad(potential.fn(params), list(params.values()))  # traces it
        return potential
    except Exception:  # a program the JIT cannot trace (data-dependent control flow, ...)
        if jit_compile:
            raise
        return program_potential(program, x, values=start)


@holds_pyro_lock  # Pyro's state is per process: one Pyro fit at a time
def fit_nuts(model, x, *, num_samples: int = 1000, num_warmup: int = 1000, num_chains: int = 4,
             init="dispersed", jitter: float = 0.1, target_accept_prob: float = 0.8,
             max_tree_depth: int = 10, dense_mass: bool | None = None, jit_compile: bool | None = None,
             chain_method: str = "parallel", backend: str = "auto", relabel: bool = True,
             seed: int | None = 0, device=None, dtype=None, progress: bool = True):
    """Posterior draws of a mixture program by NUTS with the assignment summed out.

    Parameters
    ----------
    model : GaussianMixture or callable
    x : array-like (N, D)
    num_samples, num_warmup : int
        Draws kept per chain, and adaptation steps before them (step size, diagonal mass).
    num_chains : int
        Number of chains (at least 2 for r_hat).
    init : "dispersed", "map", "prior" or dict
        "dispersed" (GaussianMixture): chain 0 at the MAP solution plus ``jitter`` (standard
        deviation in the unconstrained space), every other chain at its own spread-out state
        (k-means++ means, see :mod:`probmix.infer.mcmc.chain_starts`), so that r_hat can see
        a chain stuck where it started; for a custom program the same as "map". "map": every
        chain at the MAP solution plus ``jitter``; "prior": prior draws; or site values
        (GaussianMixture: ``weights``, ``means``, ``covariances``).
    jitter : float
    target_accept_prob, max_tree_depth
        NUTS settings (raise target_accept_prob towards 0.95 when there are divergences).
    dense_mass : bool or None
        Adapt a dense mass matrix instead of a diagonal one (both start from the curvature
        at the MAP). None (default): dense with the batched backend when there are at most
        64 unconstrained parameters (on the walkthrough data, 17 parameters, it raised the
        minimum ESS of the means from 4264 to 6984 for the same number of draws), else
        diagonal.
    jit_compile : bool, optional
        Custom programs only: trace Pyro's potential with the PyTorch JIT. None (default)
        tries it and falls back to the plain potential when tracing fails; measured 2.5x
        faster on a two-component 1-D program (15.6 s → 6.2 s, same draws). A GaussianMixture
        has a hand-written potential and ignores it.
    chain_method : {"parallel", "sequential"}
        Parallel worker processes (as many as CPU cores, one torch thread each) or one after
        the other in this process.
    backend : {"auto", "batched", "pyro"}
        "batched": chains advanced together in groups of two on the closed-form potential (a
        GaussianMixture with full covariances, Dirichlet weights and a proper prior): compiled
        (numba) on float64 CPU data (:mod:`probmix.infer.mcmc.nuts_fused`; ``PROBMIX_FUSED=0``
        switches it off), else one batched torch evaluation per leapfrog step
        (:mod:`probmix.infer.mcmc.nuts_batched`); the
        groups in parallel worker processes (``chain_method``; the draws do not depend on
        the number of cores);
        "pyro": Pyro's NUTS kernel, one chain per worker process (``chain_method``); "auto"
        (default): "batched" where it applies, else "pyro".
    relabel : bool
        Relabel every draw to the MAP's component order (keep True; False shows why).
    seed : int or None
        None draws one from the OS (recorded in ``fit.options["seed"]``).
    device, dtype
    progress : bool
        A progress bar over all chains' iterations.

    Returns
    -------
    Fit
        ``engine="mcmc"``, ``converged`` None (a sampler has no tolerance: judge it by r_hat,
        ESS and divergences), draws (chain, draw, ...), ``sample_stats`` (diverging, n_steps,
        tree_depth, step_size, acceptance_rate), ``options["seconds"]`` the sampling time.
    """
    from probmix._progress import progress_bar
    from probmix.results.diagnostics import check_convergence
    from probmix.infer.mcmc.potential import gmm_potential
    from probmix.results.posterior import fit_from_draws

    num_samples = check_int(num_samples, "num_samples", minimum=1)
    warmup = check_int(num_warmup, "num_warmup", minimum=0)
    chains = check_int(num_chains, "num_chains", minimum=1)
    seed = resolve_seed(seed)
    jitter = check_float(jitter, "jitter", minimum=0.0)
    target_accept_prob = check_float(target_accept_prob, "target_accept_prob", minimum=0.0)
    if not target_accept_prob < 1.0:
        raise ValueError(f"target_accept_prob must be in (0, 1); got {target_accept_prob!r}.")
    max_tree_depth = check_int(max_tree_depth, "max_tree_depth", minimum=1)
    if backend not in ("auto", "batched", "pyro"):
        raise ValueError(f"backend must be 'auto', 'batched' or 'pyro'; got {backend!r}.")
    if chain_method not in ("parallel", "sequential"):
        raise ValueError(f"chain_method must be 'parallel' or 'sequential'; got {chain_method!r}.")
    if isinstance(init, str) and init not in ("dispersed", "map", "prior"):
        raise ValueError(f"init must be 'dispersed', 'map', 'prior' or a dict of site values; "
                         f"got {init!r}.")
    is_gmm = isinstance(model, GaussianMixture)
    k = model.n_components if is_gmm else 1
    x = as_data(x, device=device, dtype=dtype, min_samples=k)

    # the MAP solution: the start of the chains and the reference order for relabelling
    map_values = map_start(model, x, init, seed)
    if is_gmm:
        std = Standardizer(x)
        program = model.program_for(x, shift=std.center, scale=std.scale)
        prior = model.resolve_prior(x)
        prior = None if prior is None else prior.affine(std.center, std.scale)
        potential = gmm_potential(model, std.x, prior)
        xs, start = std.x, std.to_standard(map_values)
        reference = {key: map_values[key].cpu().numpy()
                     for key in ("means", "weights", "precisions")}
    else:
        program, xs, start = model, x, map_values
        potential = _program_potential(model, x, start, jit_compile)
        reference = {n: v.cpu().numpy() for n, v in start.items()}
    dispersed = dispersed_values(model, xs, chains - 1, seed) \
        if is_gmm and init == "dispersed" and chains > 1 else None
    inits = initial_points(potential, None if init == "prior" else start, program, xs, chains,
                            jitter, seed, dispersed)
    seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(chains)]
    batched = getattr(potential.fn, "batched", None) if backend != "pyro" else None
    if backend == "batched" and batched is None:
        raise ValueError("backend='batched' needs a closed-form batched potential (a "
                         "GaussianMixture with full covariances, Dirichlet weights and a proper "
                         "prior); use backend='auto' or 'pyro'.")
    if dense_mass is None:
        size = sum(v.numel() for v in inits[0].values())
        dense_mass = batched is not None and size <= 64
    with torch.enable_grad():
        inverse_mass = laplace_inverse_mass(potential, potential.unconstrain(start),
                                            dense=dense_mass) if init != "prior" else None
    kwargs = dict(num_samples=num_samples, num_warmup=warmup,
                  target_accept_prob=target_accept_prob,
                  max_tree_depth=max_tree_depth, inverse_mass=inverse_mass, dense_mass=dense_mass)
    workers = min(chains, os.cpu_count() or 1)
    bar = progress_bar(total=chains * (warmup + num_samples), desc=f"NUTS {chains} chains",
                       enabled=progress)
    t0 = time.perf_counter()
    parallel = chain_method == "parallel" and x.device.type == "cpu"
    if batched is not None:
        results = _run_batched(batched, potential, inits, seed, kwargs, workers, bar, parallel)
    elif parallel and workers > 1:
        results = _run_parallel(
            lambda c, progress: run_chain(potential, inits[c], seed=seeds[c], progress=progress,
                                          **kwargs), chains, workers, bar)
    else:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            results = [run_chain(potential, inits[c], seed=seeds[c], progress=bar.update,
                                 **kwargs) for c in range(chains)]
        finally:
            torch.set_num_threads(before)
    seconds = time.perf_counter() - t0
    bar.close()
    draws = {n: np.stack([r["samples"][n] for r in results]) for n in potential.sites}
    stats = {n: np.stack([r["stats"][n] for r in results]) for n in results[0]["stats"]}
    if is_gmm:
        draws = std.to_original({n: torch.as_tensor(v) for n, v in draws.items()})
        if model.is_dirichlet_process:
            draws["weights"] = stick_breaking(draws.pop("sticks"))
    fit = fit_from_draws(
        model, x, draws, engine="mcmc", reference=reference if relabel else None,
        relabel=relabel, converged=None, n_iter=warmup + num_samples, sample_stats=stats,
        options=dict(method="nuts", num_samples=num_samples, num_warmup=warmup, num_chains=chains,
                     init=init if isinstance(init, str) else "given", jitter=jitter,
                     target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                     dense_mass=dense_mass, jit_compile=jit_compile, chain_method=chain_method,
                     backend="pyro" if batched is None else "batched",
                     compiled=batched is not None and fused_spec(potential.fn) is not None,
                     seed=seed, seconds=seconds))
    check_convergence(fit, stacklevel=4)
    return fit
