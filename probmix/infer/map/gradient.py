"""Gradient MAP for any mixture program: AutoDelta over the global sites, z summed out.

The loss is TraceEnum_ELBO with a point-mass guide: the negative log joint
density of the global sites with the assignment marginalised exactly. It is
deterministic, so it is minimised with L-BFGS (strong Wolfe line search). The
mode is found in the constrained space of each site, the same space in which
the closed-form EM computes it.
"""

from __future__ import annotations

import math
import warnings

import pyro
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_median, init_to_sample, init_to_value
from probmix._progress import progress_bar

from probmix._global_state import holds_pyro_lock
from probmix._random import quiet_singular_samples, resolve_seed, seeded
from probmix._threads import threads_for
from probmix._validation import check_int
from probmix.io.data import as_data
from probmix.exceptions import ConvergenceWarning
from probmix.model.gaussian_mixture import GaussianMixture, as_params
from probmix.infer.map.starts import location_starts
from probmix.model.program import (count_parameters, data_constants, global_sites,
                                   require_global_sites)
from probmix.results.result import Fit

__all__ = ["fit_gradient_map", "map_start"]


def _gmm_init_values(model: GaussianMixture, init, x, seed, *, lenient: bool = False):
    """Site values of a GaussianMixture from EM (``init="em"``) or given parameters.

    ``weights`` is always included (``sticks`` too for a Dirichlet-process prior).
    ``lenient``: EM as a mere starting point (:func:`~probmix.infer.map.em.fit_em_start`).
    """
    if isinstance(init, str) and init == "em":
        from probmix.infer.map.em import fit_em, fit_em_start

        init = (fit_em_start(model, x, seed=seed) if lenient else fit_em(model, x, seed=seed)).params
    p = as_params(init, model.family, n_components=model.n_components, n_features=x.shape[1],
                  dtype=x.dtype, device=x.device)
    prec_chol, _ = model.family.precision_cholesky(p.covariances)
    values = {"weights": p.weights.clone(), "means": p.means.clone(),  # no aliasing of init
              "precisions": model.family.precision_from_cholesky(prec_chol)}
    if model.is_dirichlet_process:
        from probmix.infer.map.em_steps import sticks_from_weights

        tiny = torch.finfo(p.weights.dtype).eps
        values["sticks"] = sticks_from_weights(p.weights).clamp(tiny, 1 - tiny)
    return values


def map_start(model, x: torch.Tensor, init, seed: int) -> dict:
    """Where SVI and NUTS start, and the component order they relabel to.

    Parameters
    ----------
    model : GaussianMixture or callable
    x : Tensor (N, D)
    init : str or dict
        A dict gives the values (for a GaussianMixture: ``weights``, ``means``,
        ``covariances``); any string means the MAP solution: EM for a GaussianMixture (run
        as a starting point, see :func:`~probmix.infer.map.em.fit_em_start`), gradient MAP
        for a custom program.

    Returns
    -------
    dict of str to Tensor
        Site values in the units of ``x``; a GaussianMixture's always include ``weights``.
    """
    if isinstance(model, GaussianMixture):
        return _gmm_init_values(model, "em" if isinstance(init, str) else init, x, seed,
                                lenient=True)
    if isinstance(init, str):
        with warnings.catch_warnings():  # an unconverged MAP is still a good start
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = fit_gradient_map(model, x, seed=seed)
        constants = fit.options.get("constants", ())
        init = {name: v for name, v in fit.params.items() if name not in constants}
    # copies: the guide's parameters are updated in place and must not alias the caller's arrays
    return {name: torch.as_tensor(v, dtype=x.dtype, device=x.device).clone()
            for name, v in init.items()}


@holds_pyro_lock  # Pyro's state is per process: one Pyro fit at a time
def fit_gradient_map(model, x, *, init="em", n_init: int | None = None, max_iter: int = 200,
                     tol: float = 1e-9, seed: int | None = 0, device=None, dtype=None,
                     progress: bool = False) -> Fit:
    """MAP estimate of any mixture program by L-BFGS on TraceEnum_ELBO with an AutoDelta guide.

    Parameters
    ----------
    model : GaussianMixture or callable
        A Pyro mixture program ``program(x)`` (or a GaussianMixture, whose ``.program`` is used).
    x : array-like (N, D)
    init : "em", "median", "sample" or dict
        Starting point of the global sites: the EM solution (GaussianMixture only; default),
        the prior medians ("median"), prior draws ("sample"; the default for custom programs,
        whose symmetric priors put every component's median at the same place, a saddle
        point; so when a program has location sites, these start at k-means centres (see
        :func:`probmix.infer.map.starts.location_starts`) and the other sites at their prior
        medians), or a dict of site values (for a GaussianMixture: ``weights``, ``means``,
        ``covariances``).
    n_init : int, optional
        With ``init="sample"``: the number of prior draws to start from (seeds ``seed``,
        ``seed + 1``, ...); the best optimum is kept. Default 5 for "sample", else 1.
    max_iter : int
        Number of L-BFGS outer steps (each up to 20 line-searched iterations).
    tol : float
        Stop when the loss changes by less than ``tol`` relative to its size.
    seed : int or None
        None draws one from the OS (recorded in ``fit.options["seed"]``).
    device, dtype
    progress : bool
        Show a progress bar over the outer steps, with the loss.

    Returns
    -------
    Fit
        ``engine="map"``, ``options["method"] == "gradient"``.
    """
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    seed = resolve_seed(seed)
    is_gmm = isinstance(model, GaussianMixture)
    if init == "em" and not is_gmm:
        init = "sample"
    n_init = (5 if init == "sample" else 1) if n_init is None else check_int(n_init, "n_init",
                                                                             minimum=1)
    if n_init > 1:
        fits, error = [], None
        for r in range(n_init):
            try:
                fits.append(fit_gradient_map(model, x, init=init, n_init=1, max_iter=max_iter,
                                             tol=tol, seed=seed + r, device=device, dtype=dtype,
                                             progress=progress))
            except ValueError as exc:  # a start that leaves the support is one lost start
                error = exc
        if not fits:
            raise error
        return max(fits, key=lambda f: f.lower_bounds[-1])
    k = model.n_components if is_gmm else 1
    x = as_data(x, device=device, dtype=dtype, min_samples=k)
    program = model.program if is_gmm else model
    if is_gmm:
        values = None if init == "median" else _gmm_init_values(model, init, x, seed)
    else:
        values = None if init in ("median", "sample") else {
            # a copy: the optimiser updates its parameters in place, and a real-valued site's
            # parameter would otherwise share memory with the caller's array
            name: torch.as_tensor(v, dtype=x.dtype, device=x.device).clone()
            for name, v in init.items()}
    if not is_gmm and init == "sample":
        with quiet_singular_samples():
            values = location_starts(program, x, seed=seed) or None
    # location starts break the symmetry, so the other sites can start at their prior medians
    init_fn = init_to_value(values=values, fallback=init_to_median) if values is not None else (
        init_to_sample if init == "sample" else init_to_median)
    with quiet_singular_samples():
        sites = global_sites(program, x)
    require_global_sites(sites, program)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    history = []
    with pyro.get_param_store().scope(), seeded(seed), threads_for(x.numel() * k):
        guide = AutoDelta(poutine.block(program, expose=sites), init_loc_fn=init_fn)
        with quiet_singular_samples():  # the prototype trace draws each site once
            guide(x)  # create the parameters
        params = [p for p in guide.parameters()]
        optim = torch.optim.LBFGS(params, lr=1.0, max_iter=20, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure():
            optim.zero_grad()
            loss = elbo.differentiable_loss(program, guide, x)
            loss.backward()
            return loss.detach()

        converged = False
        bar = progress_bar(total=max_iter, desc="gradient MAP", enabled=progress,
                           at_most=True)
        for _ in range(max_iter):
            loss = float(optim.step(closure))
            if not math.isfinite(loss):
                bar.close()
                raise ValueError("gradient MAP diverged (the loss became NaN or infinite); "
                                 "start from another init.")
            history.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.10g}")
            if len(history) > 1 and abs(history[-2] - history[-1]) <= tol * max(1.0, abs(loss)):
                converged = True
                break
        bar.close()
        site_values = {name: v.detach() for name, v in guide.median(x).items()}
    if not converged:
        warnings.warn(f"gradient MAP did not converge in max_iter={max_iter} L-BFGS steps; "
                      "increase max_iter or tol.", ConvergenceWarning, stacklevel=3)
    if is_gmm:
        family = model.family
        if model.is_dirichlet_process:
            from probmix.model.gaussian_mixture import stick_breaking

            site_values["weights"] = stick_breaking(site_values["sticks"])
        params = {"weights": site_values["weights"].cpu().numpy(),
                  "means": site_values["means"].cpu().numpy(),
                  "covariances": family.covariance_from_precision(
                      site_values["precisions"]).cpu().numpy()}
        center = x.mean(0).cpu().numpy()
    else:
        params = {name: v.cpu().numpy() for name, v in site_values.items()}
        center = None
        with quiet_singular_samples():
            n_parameters = count_parameters(program, x)
            constants = {name: v.cpu().numpy() for name, v in data_constants(program, x).items()}
        params.update(constants)  # data-derived values the predictions reuse
    n = x.shape[0]
    return Fit(engine="map", model=model, params=params, n_features=x.shape[1],
               converged=converged, n_iter=len(history),
               lower_bounds=-torch.tensor(history, dtype=torch.float64).numpy() / n,
               options=dict(method="gradient", init=init if isinstance(init, str) else "given",
                            max_iter=max_iter, tol=tol, seed=seed,
                            **({} if is_gmm else {"n_parameters": n_parameters,
                                                        "constants": list(constants)})),
               device=str(x.device), dtype=str(x.dtype).replace("torch.", ""),
               center=center, scale=1.0)
