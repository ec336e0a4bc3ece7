"""Helpers that read any Pyro mixture program by its contract.

A mixture program ``program(x)`` has global latent sites, one discrete
assignment site inside ``pyro.plate("data", N)`` marked for parallel
enumeration, and an observed site ``"obs"`` (see "Declaring your own model").
"""

from __future__ import annotations

import math

import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.poutine.util import site_is_subsample
from torch.distributions import constraints

__all__ = ["global_sites", "global_site_shapes", "enumerated_log_joint", "count_parameters"]


def _in_data_plate(site) -> bool:
    return any(frame.name == "data" for frame in site["cond_indep_stack"])


def global_sites(program, x: torch.Tensor) -> list[str]:
    """Names of the latent sites outside the data plate, in program order."""
    trace = poutine.trace(poutine.block(program, hide_fn=lambda s: False)).get_trace(x)
    return [name for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"]
            and not site_is_subsample(site) and not _in_data_plate(site)]


def global_site_shapes(program, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Shape of one value of each global latent site, in program order."""
    trace = poutine.trace(poutine.block(program, hide_fn=lambda s: False)).get_trace(x)
    return {name: tuple(trace.nodes[name]["value"].shape) for name in global_sites(program, x)}


def enumerated_log_joint(program, params: dict, x: torch.Tensor) -> torch.Tensor:
    """log p(x_n, z_n = k | θ) for every row and value of the assignment, shape (N, K).

    The global sites are fixed at ``params``; the assignment site is enumerated in parallel.
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
