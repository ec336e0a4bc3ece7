"""Helpers that read any Pyro mixture program by its contract.

A mixture program ``program(x)`` has global latent sites, one discrete
assignment site inside ``pyro.plate("data", N)`` marked for parallel
enumeration, and an observed site ``"obs"`` (see "Declaring your own model").
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, config_enumerate
from pyro.poutine.util import site_is_subsample
from torch.distributions import constraints

from probmix._global_state import holds_pyro_lock

__all__ = ["global_sites", "global_site_shapes", "require_global_sites", "data_constants",
           "enumerated_log_joint",
           "marginal_log_joint", "component_axes", "labels_exchangeable", "count_parameters",
           "unconstrained_size"]


def _in_data_plate(site) -> bool:
    return any(frame.name == "data" for frame in site["cond_indep_stack"])


@holds_pyro_lock
def global_sites(program, x: torch.Tensor) -> list[str]:
    """Names of the latent sites outside the data plate, in program order."""
    trace = poutine.trace(poutine.block(program, hide_fn=lambda s: False)).get_trace(x)
    return [name for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"]
            and not site_is_subsample(site) and not _in_data_plate(site)]


def require_global_sites(sites, program) -> None:
    """A ValueError when a program has no latent site outside the data plate to infer."""
    if not sites:
        name = getattr(program, "__name__", type(program).__name__)
        raise ValueError(
            f"the program {name} has no latent sample site outside pyro.plate('data') (no "
            "weights, means, ...): there is nothing to infer. Declare the mixture's parameters "
            "with pyro.sample; probmix.check_program(program, x) lists what a mixture program "
            "needs.")


@holds_pyro_lock
def global_site_shapes(program, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Shape of one value of each global latent site, in program order."""
    trace = poutine.trace(poutine.block(program, hide_fn=lambda s: False)).get_trace(x)
    return {name: tuple(trace.nodes[name]["value"].shape) for name in global_sites(program, x)}


@holds_pyro_lock
def data_constants(program, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Values of the program's ``pyro.deterministic`` sites outside the data plate, given ``x``.

    A program declares a quantity computed from the data it was fitted to (the bounding box
    of a uniform background, say) as a deterministic site. A fit records these values, and
    predictions on new data condition on them, so a point's density does not depend on the
    other rows it is scored with.
    """
    trace = poutine.trace(poutine.block(program, hide_fn=lambda s: False)).get_trace(x)
    return {name: site["value"].detach() for name, site in trace.nodes.items()
            if site["type"] == "sample" and site["infer"].get("_deterministic")
            and not _in_data_plate(site)}


@holds_pyro_lock
def enumerated_log_joint(program, params: dict, x: torch.Tensor) -> torch.Tensor:
    """log p(x_n, z_n = k | θ) for every row and value of the assignment, shape (N, K).

    The global sites (and any recorded :func:`data_constants`) are fixed at ``params``; the
    assignment site is enumerated in parallel.
    """
    data = {name: torch.as_tensor(value, dtype=x.dtype, device=x.device)
            for name, value in params.items()}
    conditioned = poutine.condition(config_enumerate(program, default="parallel"), data=data)
    trace = poutine.trace(poutine.enum(conditioned, first_available_dim=-2)).get_trace(x)
    trace.compute_log_prob()
    total = None
    for site in trace.nodes.values():
        if site["type"] == "sample" and _in_data_plate(site):
            lp = site["log_prob"]  # (K, 1) for the assignment, (K, N) for the observation
            total = lp if total is None else total + lp
    if total is None or total.ndim != 2:
        raise ValueError(
            "the program needs one enumerated assignment site and an observed site 'obs' inside "
            "pyro.plate('data', N); see 'Declaring your own model' in the docs."
        )
    return total.T.contiguous()


@holds_pyro_lock
def marginal_log_joint(program, params: dict, x: torch.Tensor) -> float:
    """log p(θ, x) with the assignment summed out, the global sites fixed at ``params``.

    ``params`` must give every global latent site (missing ones would be drawn).
    """
    data = {name: torch.as_tensor(value, dtype=x.dtype, device=x.device)
            for name, value in params.items()}
    conditioned = poutine.condition(config_enumerate(program, default="parallel"), data=data)
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(conditioned, lambda *args, **kwargs: None, x)
    return -float(loss)


@holds_pyro_lock
def component_axes(program, x: torch.Tensor, sites: list[str]) -> dict[str, int]:
    """Component axis of each global site of a mixture program.

    A site inside ``pyro.plate("components", K)`` has its component axis at the plate's dim
    (left of the event dims); a simplex-valued site of length K (the weights) on its last axis.
    """
    trace = poutine.trace(program).get_trace(x)
    k = None
    for site in trace.nodes.values():
        for frame in site.get("cond_indep_stack", ()):
            if frame.name == "components":
                k = frame.size
    axes = {}
    for name in sites:
        site = trace.nodes[name]
        event_dim = site["fn"].event_dim
        frames = [f for f in site["cond_indep_stack"] if f.name == "components"]
        if frames:
            axes[name] = frames[0].dim - event_dim
        elif site["fn"].support is constraints.simplex and (
                k is None or site["value"].shape[-1] == k):
            axes[name] = -1
    return axes


@holds_pyro_lock
def labels_exchangeable(program, x: torch.Tensor, values: dict, axes: dict) -> bool:
    """Whether permuting the components (along ``axes``) leaves the program's density unchanged.

    Relabelling draws is right only for exchangeable components. Ordered means, stick-breaking
    weights or a component with its own role (a background) identify the labels, and a draw
    permuted along the sites that carry a component axis would no longer be a draw of that
    program. Checked at ``values`` (the reference) with the components rotated by one.
    """
    if not axes or any(name not in values for name in axes):
        return False
    k = np.shape(values[next(iter(axes))])[axes[next(iter(axes))]]
    if k < 2:
        return True
    rolled = {name: (np.roll(np.asarray(v), 1, axis=axes[name]) if name in axes else v)
              for name, v in values.items()}
    before = marginal_log_joint(program, values, x)
    after = marginal_log_joint(program, rolled, x)
    return bool(abs(before - after) <= 1e-6 * (1.0 + abs(before)))


@holds_pyro_lock
def count_parameters(program, x: torch.Tensor) -> int:
    """Free parameters of a program's global sites (simplexes lose one, PD matrices a triangle)."""
    trace = poutine.trace(program).get_trace(x)
    sites = global_sites(program, x)
    return sum(unconstrained_size(trace.nodes[name]["fn"].support,
                                  tuple(trace.nodes[name]["value"].shape)) for name in sites)


def unconstrained_size(support, shape: tuple[int, ...]) -> int:
    """Number of free values in a tensor of ``shape`` on ``support``."""
    n = math.prod(shape)
    if support is constraints.simplex:
        return n - n // shape[-1]
    if isinstance(support, (type(constraints.positive_definite), type(constraints.lower_cholesky))):
        d = shape[-1]
        return n // (d * d) * d * (d + 1) // 2
    return n
