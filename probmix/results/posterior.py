"""From posterior draws to a :class:`~probmix.results.result.Fit`: relabel, summarise, package.

Every sampling or variational engine (SVI, CAVI, NUTS, Gibbs) ends here, so
relabelling and the point estimates are computed one way for all of them. What
depends on the model (its component axes, derived sites, standardisation, data
constants) comes from its :class:`~probmix.model.interface.MixtureModel` interface.

Draws are dicts of site name to arrays shaped (chain, draw, *site_shape). For a
:class:`~probmix.GaussianMixture` the sites are ``weights`` (C, S, K), ``means``
(C, S, K, D) and ``precisions`` in the family's native shape; ``covariances``
(native shape) is added here. Point estimates are posterior means (of the
covariances themselves, not the inverse of the mean precision).
"""

from __future__ import annotations

import numpy as np
import torch

from probmix.model.interface import as_model
from probmix.results.relabel import relabel_assignments, relabel_draws
from probmix.results.result import Fit

__all__ = ["fit_from_draws"]


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
        ``draws`` relabelled; ``params`` their posterior means; ``options["relabelled"]``
        says whether relabelling ran and ``options["n_relabelled"]`` counts the draws it
        reordered. A program's fit also records ``options["sites"]`` (the sampled sites) and
        ``options["constants"]`` (its data constants, kept in ``params``).
    """
    draws = _as_numpy(draws)
    options = dict(fields.pop("options", {}))
    mixture = as_model(model)
    sites = options.get("sites", list(draws))
    draws = mixture.complete_draws(draws)
    constants = mixture.data_constants(x)  # data-derived values the predictions reuse
    options.update(mixture.fit_options(sites, constants))
    axes = mixture.component_axes(x, list(draws))
    if reference is not None and axes and not mixture.labels_exchangeable(x, reference, axes):
        axes = {}  # the model identifies its labels: draws keep them
    signature = mixture.signature_site
    center, scale = mixture.standardisation(x)
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
    params = {**params, **constants}
    return Fit(engine=engine, model=model, params=params, n_features=x.shape[1], draws=draws,
               options=options, device=str(x.device), dtype=str(x.dtype).replace("torch.", ""),
               center=center, scale=scale, data=x.detach().cpu().numpy(), **fields)
