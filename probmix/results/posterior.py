"""From posterior draws to a :class:`~probmix.results.result.Fit`: relabel, summarise, package.

Every sampling or variational engine (SVI, CAVI, NUTS, Gibbs) ends here, so
relabelling and the point estimates are computed one way for all of them.

Draws are dicts of site name to arrays shaped (chain, draw, *site_shape). For a
:class:`~probmix.GaussianMixture` the sites are ``weights`` (C, S, K), ``means``
(C, S, K, D) and ``precisions`` in the family's native shape; ``covariances``
(native shape) is added here. Point estimates are posterior means (of the
covariances themselves, not the inverse of the mean precision).
"""

from __future__ import annotations

import numpy as np
import torch
from pyro import poutine

from probmix.infer.standardize import data_scale
from probmix.model.gaussian_mixture import GaussianMixture
from probmix.results.relabel import relabel_assignments, relabel_draws
from probmix.results.result import Fit

__all__ = ["gmm_component_axes", "program_component_axes", "labels_exchangeable",
           "fit_from_draws"]


def gmm_component_axes(model: GaussianMixture) -> dict[str, int]:
    """Component axis (negative) of each GaussianMixture site; tied precisions have none."""
    axes = {"weights": -1, "means": -2}
    if not model.family.tied:
        axis = -1 - model.family.precision_event_dims
        axes.update(precisions=axis, covariances=axis)
    return axes


def program_component_axes(program, x: torch.Tensor, sites: list[str]) -> dict[str, int]:
    """Component axis of each global site of a mixture program.

    A site inside ``pyro.plate("components", K)`` has its component axis at the plate's dim
    (left of the event dims); a simplex-valued site of length K (the weights) on its last axis.
    """
    from torch.distributions import constraints

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


def labels_exchangeable(program, x: torch.Tensor, values: dict, axes: dict) -> bool:
    """Whether permuting the components (along ``axes``) leaves the program's density unchanged.

    Relabelling draws is right only for exchangeable components. Ordered means, stick-breaking
    weights or a component with its own role (a background) identify the labels, and a draw
    permuted along the sites that carry a component axis would no longer be a draw of that
    program. Checked at ``values`` (the reference) with the components rotated by one.
    """
    from probmix.model.program import marginal_log_joint

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


def _as_numpy(draws: dict) -> dict:
    return {name: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
            for name, v in draws.items()}


def fit_from_draws(model, x: torch.Tensor, draws: dict, *, engine: str, reference: dict | None,
                   relabel: bool = True, params: dict | None = None, **fields) -> Fit:
    """Relabel draws to a reference and package them with their posterior means as a Fit.

    Parameters
    ----------
    model : GaussianMixture or callable
    x : Tensor (N, D)
        The data the engine saw (kept in the Fit for ArviZ).
    draws : dict of str to array (C, S, ...)
        Draws of the global sites (torch or numpy).
    engine : {"svi", "mcmc"}
    reference : dict or None
        Site values whose component order the draws take (the MAP solution or the point
        estimate): for a GaussianMixture ``{"means": (K, D)}`` and optionally
        ``"weights": (K,)`` (which weight the matching, so empty components cannot steal an
        occupied label); for a program, values of its component-indexed sites. None leaves
        the order as drawn.
    relabel : bool
        False keeps the draws as they came (to show what relabelling does).
    params : dict, optional
        Exact posterior means (e.g. CAVI's closed form) to use instead of the draws' averages;
        they must be in the reference's component order.
    **fields
        Other :class:`Fit` fields (converged, n_iter, options, losses, sample_stats,
        ``assignment_draws`` (C, S, N) in the draws' own labels, relabelled here too, ...).

    Returns
    -------
    Fit
        ``draws`` relabelled; ``params`` their posterior means; ``options["permutations"]``
        counts how many draws were reordered.
    """
    draws = _as_numpy(draws)
    options = dict(fields.pop("options", {}))
    if isinstance(model, GaussianMixture):
        family = model.family
        prec = torch.as_tensor(draws["precisions"])
        draws["covariances"] = family.covariance_from_precision(prec).numpy()
        axes = gmm_component_axes(model)
        signature = "means"
        center = x.mean(0)
        center, scale = center.cpu().numpy(), data_scale(x, center)
    else:
        from probmix.model.program import data_constants

        sites = options.setdefault("sites", list(draws))
        constants = {n: v.cpu().numpy() for n, v in data_constants(model, x).items()}
        options["constants"] = list(constants)  # data-derived values the predictions reuse
        axes = program_component_axes(model, x, sites)
        if reference is not None and not labels_exchangeable(model, x, reference, axes):
            axes = {}  # the program identifies its labels: draws keep them
        signature = None
        center, scale = None, 1.0
    n_relabelled = 0
    if relabel and reference is not None and axes:
        names = [signature] if signature else list(axes)
        ref = np.concatenate([np.moveaxis(np.asarray(reference[n], dtype=np.float64), axes[n], 0)
                              .reshape(np.shape(reference[n])[axes[n]], -1) for n in names], -1)
        weights = reference.get("weights")
        if weights is None and signature is None and "weights" in axes:
            weights = reference["weights"]
        draws, perms = relabel_draws(draws, ref, axes, signature=signature,
                                     weights=None if weights is None else np.ravel(weights))
        if fields.get("assignment_draws") is not None:
            fields["assignment_draws"] = relabel_assignments(fields["assignment_draws"], perms)
        n_relabelled = int((perms != np.arange(perms.shape[-1])).any(-1).sum())
    options.update(relabelled=bool(relabel and reference is not None and axes),
                   n_relabelled=n_relabelled)
    means = {name: v.mean(axis=(0, 1)) for name, v in draws.items()}
    params = means if params is None else {**means, **_as_numpy(params)}
    if not isinstance(model, GaussianMixture):
        params = {**params, **constants}
    return Fit(engine=engine, model=model, params=params, n_features=x.shape[1], draws=draws,
               options=options, device=str(x.device), dtype=str(x.dtype).replace("torch.", ""),
               center=center, scale=scale, data=x.detach().cpu().numpy(), **fields)
