"""From posterior draws to a :class:`~probmix.results.result.Fit`: relabel, summarise, package.

Every sampling or variational engine (SVI, CAVI, NUTS, Gibbs) ends here, so
relabelling and the point estimates are computed one way for all of them. What
depends on the model (its component axes, derived sites, standardisation, data
constants) comes from its :class:`~probmix.model.interface.MixtureModel` interface.

Draws are dicts of site name to arrays shaped (chain, draw, *site_shape). For a
:class:`~probmix.GaussianMixture` the sites are ``weights`` (C, S, K), ``means``
(C, S, K, D) and ``precisions`` in the family's native shape; ``covariances``
(native shape) is added here. Point estimates are the model's
(:meth:`~probmix.model.interface.MixtureModel.point_estimates`): posterior means, except a
Gaussian mixture's covariances, which are the inverse of the posterior mean precision (the
posterior mean of a covariance need not exist). A Gaussian mixture's fit also records the
expected number of points of each component and which components are empty.
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
    center, scale = mixture.standardisation(x)
    n_relabelled = 0
    if relabel and reference is not None and axes:
        # the whole parameter of each component, restricted to the sites the reference has
        ref = mixture.relabel_signatures(reference, axes, 0)  # (K, P)
        sig = mixture.relabel_signatures({n: v for n, v in draws.items() if n in reference},
                                         axes, 2)  # (C, S, K, P)
        weights = reference.get("weights")
        draws, perms = relabel_draws(draws, ref, axes, signatures=sig,
                                     weights=None if weights is None else np.ravel(weights))
        if fields.get("assignment_draws") is not None:
            fields["assignment_draws"] = relabel_assignments(fields["assignment_draws"], perms)
        n_relabelled = int((perms != np.arange(perms.shape[-1])).any(-1).sum())
    options.update(relabelled=bool(relabel and reference is not None and axes),
                   n_relabelled=n_relabelled)
    means = mixture.point_estimates(draws)
    params = means if params is None else {**means, **_as_numpy(params)}
    params = {**params, **constants}
    fit = Fit(engine=engine, model=model, params=params, n_features=x.shape[1], draws=draws,
              options=options, device=str(x.device), dtype=str(x.dtype).replace("torch.", ""),
              center=center, scale=scale, data=x.detach().cpu().numpy(), **fields)
    if mixture.gaussian and "weights" in draws:
        counts = expected_counts(fit, x)
        fit.options.update(expected_counts=counts.tolist(),
                           empty_components=np.flatnonzero(counts < 0.5).tolist())
    return fit


def expected_counts(fit: Fit, x, *, max_draws: int = 64,
                    batch_elements: int = 2**22) -> np.ndarray:
    """Posterior expected number of points of ``x`` in each component, shape (K,).

    E[n_k | x] = Σ_n E_θ[p(z_n = k | x_n, θ)], averaged over at most ``max_draws`` draws
    spread evenly over the chains (in batches of at most ``batch_elements`` draws × N × K).
    A component with E[n_k] < 0.5 is empty: its parameters are draws from (near) its prior,
    not estimates from data.
    """
    c, s = next(iter(fit.draws.values())).shape[:2]
    keep = np.unique(np.linspace(0, c * s - 1, min(max_draws, c * s)).astype(int))
    flat = {n: np.asarray(v).reshape(c * s, *np.shape(v)[2:])[keep] for n, v in fit.draws.items()}
    x = torch.as_tensor(x)
    step = max(1, batch_elements // (x.shape[0] * fit.n_components))
    total = 0.0
    for start in range(0, len(keep), step):
        batch = {n: v[start:start + step] for n, v in flat.items()}
        logp = fit.mixture.log_joint(batch, x, shift=fit.center, scale=fit.scale)  # (B, N, K)
        total = total + torch.softmax(logp, -1).sum((0, 1))
    return (total / len(keep)).cpu().numpy()
