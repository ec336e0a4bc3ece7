"""Stochastic variational inference for any mixture program: Pyro SVI with z summed out.

The loss is TraceEnum_ELBO: the assignment ``z`` is enumerated and summed out
exactly, so the guide covers only the global sites (weights, means, precisions,
or whatever a custom program declares). The guide is an autoguide over the
program with ``z`` hidden ("normal": a diagonal Normal in the unconstrained
space, "mvn": a full-covariance one, "delta": a point mass, i.e. MAP by SGD) or
a Pyro guide of the user's.

Initialisation comes from the MAP engine: the guide's location starts at the
EM optimum (gradient MAP for custom programs) with a small scale, so SVI never
starts from a label-scrambled random point (``init="prior"`` starts from a
prior draw instead, for comparison).

Mini-batches: with ``batch_size=B`` each step sees B random rows; the sites in
the data plate are scaled by N / B, an unbiased estimate of the full ELBO.
The step size decays (ClippedAdam, ``lr`` to ``lr · lr_decay`` over ``steps``).
Convergence: the mean loss of consecutive windows of steps stops improving by
more than ``tol`` (relative) or than twice its Monte Carlo standard error. The
guide's parameters are then averaged over one more window (Polyak averaging),
which removes the jitter that a fixed step size leaves in them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta, AutoGuide, AutoMultivariateNormal, AutoNormal
from pyro.infer.autoguide.initialization import init_to_sample, init_to_value
from pyro.optim import ClippedAdam
from probmix._progress import progress_bar

from probmix._global_state import holds_pyro_lock
from probmix._random import generator, quiet_singular_samples, resolve_seed, seeded
from probmix._threads import threads_for
from probmix._validation import check_float, check_int
from probmix.io.data import as_data
from probmix.exceptions import ConvergenceWarning
from probmix.model.gaussian_mixture import GaussianMixture, stick_breaking
from probmix.infer.map.gradient import map_start
from probmix.infer.standardize import Standardizer
from probmix.model.program import global_site_shapes, require_global_sites
from probmix.results.result import Fit

__all__ = ["fit_svi", "GUIDES", "ScaleDataPlate"]

GUIDES = ("auto", "laplace", "normal", "mvn", "delta")


class ScaleDataPlate(pyro.poutine.messenger.Messenger):
    """Multiply the log-density of every site inside ``pyro.plate("data", ...)`` by ``factor``.

    Running a program on B of N rows under ``ScaleDataPlate(N / B)`` gives an unbiased
    estimate of its full-data log joint: the mini-batch rule for any mixture program.
    """

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def _process_message(self, msg):
        if any(frame.name == "data" for frame in msg["cond_indep_stack"]):
            msg["scale"] = self.factor * msg["scale"]


def _make_guide(guide, program, sites, values, init_scale):
    if not isinstance(guide, str):
        if not callable(guide):
            raise TypeError(f"guide must be one of {GUIDES} or a Pyro guide (a callable); got "
                            f"{type(guide).__name__}.")
        return guide
    if guide not in GUIDES:
        raise ValueError(f"guide must be one of {GUIDES} or a Pyro guide; got {guide!r}.")
    guide = "normal" if guide == "auto" else guide  # fit_svi resolves a GaussianMixture's
    init_fn = init_to_sample if values is None else init_to_value(values=values)
    blocked = poutine.block(program, expose=sites)
    if guide == "normal":
        return AutoNormal(blocked, init_loc_fn=init_fn, init_scale=init_scale)
    if guide == "mvn":
        return AutoMultivariateNormal(blocked, init_loc_fn=init_fn, init_scale=init_scale)
    return AutoDelta(blocked, init_loc_fn=init_fn)


def _window_converged(losses: list[float], window: int, tol: float) -> bool:
    """Whether the last window's mean loss improved on the one before by less than the noise."""
    if len(losses) < 2 * window:
        return False
    prev = np.asarray(losses[-2 * window:-window])
    last = np.asarray(losses[-window:])
    improvement = prev.mean() - last.mean()
    noise = 2.0 * math.sqrt((prev.var() + last.var()) / window)
    return improvement < max(tol * abs(last.mean()), noise)


def _draw_guide(guide, x, sites, num_draws):
    """(num_draws, ...) samples of each global site from the guide."""
    predictive = Predictive(guide, num_samples=num_draws, return_sites=sites, parallel=True)
    try:
        with quiet_singular_samples():
            out = predictive(x)
    except (RuntimeError, ValueError, NotImplementedError, IndexError):  # does not vectorise
        predictive = Predictive(guide, num_samples=num_draws, return_sites=sites)
        with quiet_singular_samples():
            out = predictive(x)
    return {name: out[name].detach() for name in sites}


@holds_pyro_lock  # Pyro's state is per process: one Pyro fit at a time
def fit_svi(model, x, *, guide="auto", steps: int = 2000, lr: float = 0.01,
            lr_decay: float = 0.1, batch_size: int | None = None, num_particles: int = 1,
            num_draws: int = 1000, init="map", init_scale: float = 0.01, tol: float = 1e-5,
            window: int | None = None, seed: int | None = 0, device=None, dtype=None,
            progress: bool = True) -> Fit:
    """Variational posterior of a mixture program by stochastic variational inference.

    Parameters
    ----------
    model : GaussianMixture or callable
        A GaussianMixture, or a Pyro mixture program ``program(x)``.
    x : array-like (N, D)
    guide : {"auto", "laplace", "normal", "mvn", "delta"} or callable
        Autoguide over the global sites (diagonal Normal, multivariate Normal or point mass in
        the unconstrained space), or a Pyro guide ``guide(x)`` for the global sites.
        "laplace" (GaussianMixture, started from the MAP): the full-rank Normal N(MAP, H⁻¹)
        of the Laplace approximation in the unconstrained space, taken as it is, without
        stochastic steps (:mod:`probmix.infer.vi.laplace_guide`; where the Hessian is not
        positive definite, an "mvn" guide fitted by SVI instead). "auto" (default):
        "laplace" for a GaussianMixture started from the MAP on all rows (no ``batch_size``),
        "normal" otherwise. Measured
        against NUTS (``benchmarks/bench_vi.py``), largest bias of a weight or mean in
        posterior sds: "laplace" 0.049 (3000 × 2 walkthrough data) and 0.037 (Old Faithful),
        "normal" 0.17 and 0.20, "mvn" 0.21 and 0.18.
    steps : int
        Maximum number of optimisation steps (:func:`probmix.fit` also takes it as
        ``max_iter=``, the iteration cap's name in the other optimisers).
    lr : float
        Initial learning rate of ClippedAdam.
    lr_decay : float
        Factor by which the learning rate has decayed after ``steps`` steps.
    batch_size : int, optional
        Rows per step (mini-batch SVI, sites in the data plate scaled by N / B); None: all.
    num_particles : int
        Monte Carlo samples of the guide per step.
    num_draws : int
        Draws from the fitted guide kept in ``fit.draws`` (shaped (1, num_draws, ...)).
    init : "map", "prior" or dict
        Start of the guide's location: the MAP solution, a prior draw, or site values (for a
        GaussianMixture: ``weights``, ``means``, ``covariances``).
    init_scale : float
        Initial scale of the "normal"/"mvn" guides in the unconstrained space.
    tol : float
        Convergence: relative improvement of the windowed mean loss below ``tol`` (or below
        twice its standard error).
    window : int, optional
        Steps per window of the convergence rule (default max(50, steps // 20)).
    seed : int or None
        None draws one from the OS (recorded in ``fit.options["seed"]``).
    device, dtype
    progress : bool
        Show a progress bar with the smoothed loss.

    Returns
    -------
    Fit
        ``engine="svi"``; ``draws`` from the guide, relabelled to the guide's median; ``params``
        their posterior means; ``losses`` the loss (negative ELBO, nats) per step;
        ``options["elbo"]`` the ELBO of the final guide on all rows (100 particles).
    """
    from probmix.results.posterior import fit_from_draws

    steps = check_int(steps, "steps", minimum=1)
    seed = resolve_seed(seed)
    num_particles = check_int(num_particles, "num_particles", minimum=1)
    num_draws = check_int(num_draws, "num_draws", minimum=1)
    lr = check_float(lr, "lr", minimum=0.0)
    lr_decay = check_float(lr_decay, "lr_decay", minimum=0.0)
    if lr == 0 or lr_decay == 0:
        raise ValueError(f"lr and lr_decay must be > 0; got lr={lr!r}, lr_decay={lr_decay!r}.")
    init_scale = check_float(init_scale, "init_scale", minimum=0.0)
    tol = check_float(tol, "tol", minimum=0.0)
    window = max(50, steps // 20) if window is None else check_int(window, "window", minimum=1)
    is_gmm = isinstance(model, GaussianMixture)
    kind = ("laplace" if is_gmm and init != "prior" and batch_size is None else "normal") \
        if isinstance(guide, str) and guide == "auto" else guide
    if isinstance(kind, str) and kind == "laplace" and (not is_gmm or init == "prior"):
        raise ValueError("guide='laplace' needs a probmix.GaussianMixture started from its MAP "
                         f"solution (init='map' or given values); got init={init!r} for "
                         f"{type(model).__name__}. Use guide='mvn'.")
    k = model.n_components if is_gmm else 1
    x = as_data(x, device=device, dtype=dtype, min_samples=k)
    n = x.shape[0]
    if batch_size is not None:
        batch_size = min(check_int(batch_size, "batch_size", minimum=1), n)
    if isinstance(init, str) and init not in ("map", "prior"):
        raise ValueError(f"init must be 'map', 'prior' or a dict of site values; got {init!r}.")
    values = None if init == "prior" else map_start(model, x, init, seed)
    x_orig, std = x, None
    if is_gmm:  # work in standardised units: Adam's step size is then unit-free
        std = Standardizer(x)
        program, x = model.program_for(x, shift=std.center, scale=std.scale), std.x
        values = None if values is None else std.to_standard(values)
    else:
        program = model
    with quiet_singular_samples():
        shapes = global_site_shapes(program, x)
    require_global_sites(shapes, program)
    sites = list(shapes)
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=num_particles,
                          vectorize_particles=num_particles > 1)
    rows = generator(seed, device=x.device)
    losses: list[float] = []
    converged = False
    with pyro.get_param_store().scope(), seeded(seed), threads_for(x.numel() * k):
        g = _make_guide("mvn" if kind == "laplace" else kind, program, sites, values, init_scale)
        laplace = False
        if kind == "laplace":
            from probmix.infer.vi.laplace_guide import start_at_laplace

            g(x)  # sets the guide up
            prior_s = model.resolve_prior(x_orig)
            prior_s = None if prior_s is None else prior_s.affine(std.center, std.scale)
            laplace = start_at_laplace(g, model, x, prior_s, values)
            if laplace:
                steps, converged = 0, True  # the approximation is taken as it is
        optim = ClippedAdam({"lr": lr, "lrd": lr_decay ** (1.0 / max(steps, 1)), "clip_norm": 10.0})
        svi = SVI(program, g, optim, loss=elbo)
        bar = progress_bar(range(steps), desc="SVI", enabled=progress and bool(steps),
                           unit="step")
        averager, stop_at = None, steps
        for step in bar:
            if batch_size is None or batch_size == n:
                batch = x
            else:
                idx = torch.randperm(n, generator=rows, device=x.device)[:batch_size]
                batch, svi.model = x[idx], ScaleDataPlate(n / batch_size)(program)
            with quiet_singular_samples():
                loss = svi.step(batch)
            if not math.isfinite(loss):
                raise ValueError(
                    f"SVI diverged at step {step} (the loss became {loss}); lower lr (now {lr:g}) "
                    "or start from init='map'.")
            losses.append(loss)
            if averager is not None:
                averager.add()
            if step + 1 >= stop_at:
                break
            if averager is None and (step + 1) % window == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-window:]):.6g}")
                converged = _window_converged(losses, window, tol)
                if converged or step + 1 + window >= steps:
                    # Polyak averaging over one more window removes the SGD jitter
                    averager, stop_at = _ParamAverager(), min(steps, step + 1 + window)
        if averager is not None:
            averager.assign()
        bar.close()
        svi.model = program
        with quiet_singular_samples():
            final_elbo = -_full_loss(program, g, x)
            draws = _draw_guide(g, x, sites, num_draws)
            median = _median(g, x)
    if not converged:
        warnings.warn(f"SVI did not converge in steps={steps}; increase steps or lr, or loosen "
                      f"tol (now {tol:g}).", ConvergenceWarning, stacklevel=3)
    draws = {name: v.reshape(1, num_draws, *shapes[name]) for name, v in draws.items()}
    losses_arr = np.asarray(losses)
    reference = None
    if is_gmm:
        draws = std.to_original(draws)
        if model.is_dirichlet_process:
            draws["weights"] = stick_breaking(draws.pop("sticks"))
        if median is not None:
            w = median["weights"] if "weights" in median else stick_breaking(
                torch.as_tensor(median["sticks"])).numpy()
            reference = {"means": median["means"] * std.scale + std.center.cpu().numpy(),
                         "weights": w, "precisions": median["precisions"] / std.scale**2}
        final_elbo += std.log_jacobian
        losses_arr = losses_arr - std.log_jacobian
    elif median is not None:
        reference = median
    guide_name = kind if isinstance(kind, str) else type(kind).__name__
    return fit_from_draws(
        model, x_orig, draws, engine="svi", reference=reference, converged=converged,
        n_iter=len(losses), losses=losses_arr, lower_bounds=-losses_arr / n,
        options=dict(method="stochastic", guide=guide_name, steps=steps, lr=lr,
                     lr_decay=lr_decay, batch_size=batch_size, num_particles=num_particles,
                     num_draws=num_draws, init=init if isinstance(init, str) else "given",
                     tol=tol, window=window, seed=seed, elbo=final_elbo,
                     laplace_start=laplace))


class _ParamAverager:
    """Running mean of every (unconstrained) parameter in the param store (Polyak averaging)."""

    def __init__(self):
        self.store = pyro.get_param_store()
        self.count = 0
        self.sums = {}

    def add(self):
        self.count += 1
        for name in self.store.keys():
            value = self.store._params[name].detach()
            self.sums[name] = value.clone() if name not in self.sums else self.sums[name] + value

    def assign(self):
        if not self.count:
            return
        with torch.no_grad():
            for name, total in self.sums.items():
                self.store._params[name].copy_(total / self.count)


def _full_loss(program, guide, x, particles: int = 100) -> float:
    """The negative ELBO on all rows, averaged over ``particles`` draws of the guide."""
    try:
        loss = TraceEnum_ELBO(max_plate_nesting=1, num_particles=particles,
                              vectorize_particles=True).loss(program, guide, x)
    except (RuntimeError, ValueError, NotImplementedError):
        loss = TraceEnum_ELBO(max_plate_nesting=1, num_particles=particles).loss(program, guide, x)
    return float(loss)


def _median(guide, x) -> dict | None:
    """The guide's median of each global site, when the guide has one (autoguides)."""
    if not isinstance(guide, AutoGuide):
        return None
    med = guide.median(x)
    return {name: v.detach().cpu().numpy() for name, v in med.items()}
