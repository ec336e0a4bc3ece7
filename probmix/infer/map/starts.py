"""Starting values for the location sites of a mixture program, from k-means centres.

Lives with the engines (not with the model declarations): it runs the KMeans baseline.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.distributions import constraints as pyro_constraints
from torch.distributions import constraints

from probmix.baselines.kmeans import KMeans
from probmix.model.program import global_sites

__all__ = ["location_starts"]


def location_starts(program, x: torch.Tensor, *, seed: int) -> dict[str, torch.Tensor]:
    """Starting values for the location sites of a program, from k-means centres of ``x``.

    A location site is a global site with one row of D reals per component: shape (K, D) with
    real support inside ``pyro.plate("components", K)``; or an ordered vector of shape (K,),
    the first coordinate of the means (it gets the centres' first coordinates, sorted), with,
    when D > 1, the other coordinates in a real site of shape (K, D - 1) inside the plate (it
    gets theirs, in the same order). Prior draws put such sites anywhere, and a mixture
    started with two locations in one cluster and none in another stays there; the k-means
    centres (one k-means++ start, seeded) put one in each dense region.

    Returns
    -------
    dict of str to Tensor
        Only the location sites (empty when the program has none or no components plate).
    """
    trace = poutine.trace(poutine.block(program, hide_fn=lambda s: False)).get_trace(x)
    k = next((frame.size for site in trace.nodes.values() if site["type"] == "sample"
              for frame in site["cond_indep_stack"] if frame.name == "components"), None)
    if k is None or k > x.shape[0]:
        return {}
    n, d = x.shape
    found, rest = [], []  # (name, "full" or "first"); real (K, D - 1) sites in the plate
    for name in global_sites(program, x):
        site = trace.nodes[name]
        shape, support = tuple(site["value"].shape), site["fn"].support
        in_plate = any(f.name == "components" for f in site["cond_indep_stack"])
        while isinstance(support, constraints.independent):
            support = support.base_constraint
        if in_plate and shape == (k, d) and support is constraints.real:
            found.append((name, "full"))
        elif shape == (k,) and isinstance(support, type(pyro_constraints.ordered_vector)):
            found.append((name, "first"))
        elif d > 1 and in_plate and shape == (k, d - 1) and support is constraints.real:
            rest.append(name)
    if not found:
        return {}
    centres = torch.as_tensor(KMeans(k, n_init=1, seed=seed).fit(x).cluster_centers_,
                              dtype=x.dtype, device=x.device)  # (K, D)
    by_first = centres[centres[:, 0].argsort()]  # (K, D), first coordinate increasing
    out = {name: by_first[:, 0] if kind == "first" else centres for name, kind in found}
    if any(kind == "first" for _, kind in found):
        out.update({name: by_first[:, 1:] for name in rest})
    return out

