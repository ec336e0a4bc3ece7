"""Starting points of CAVI (:mod:`probmix.infer.vi.cavi`): validated initial
responsibilities, the MAP start, and the q of a previous fit (warm start)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from probmix.exceptions import ConvergenceWarning
from probmix.model.gaussian_mixture import GaussianMixture
from probmix.model.mixture_posterior import MixturePosterior
from probmix.model.priors import Prior
from probmix.results.result import Fit

__all__ = ["map_responsibilities", "given_responsibilities", "check_warm_start", "q_from_fit"]


def map_responsibilities(model: GaussianMixture, x: torch.Tensor, seed: int) -> torch.Tensor:
    """p(z | x, θ_MAP) from closed-form EM, shape (N, K).

    MAP needs α >= 1; for a sparser weight prior the MAP start uses α = 1 instead.
    """
    from probmix.infer.map.em import fit_em

    start = model
    if bool((model.resolve_prior(x).alpha < 1).any()):
        base = model.prior if isinstance(model.prior, Prior) else Prior()
        start = GaussianMixture(model.n_components, covariance=model.family,
                                prior=dataclasses.replace(base, weight_concentration=None),
                                weights_prior=model.weights_prior)
    with warnings.catch_warnings():  # only a starting point: EM's own tolerance is moot
        warnings.simplefilter("ignore", ConvergenceWarning)
        em = fit_em(start, x, seed=seed)
    return torch.as_tensor(em.predict_proba(x), dtype=x.dtype, device=x.device)


def given_responsibilities(init, n: int, k: int, x: torch.Tensor):
    """Validate ``init`` given as responsibilities (N, K) or integer labels (N,).

    Returns the responsibilities (N, K) and what was given ("labels" or "responsibilities").
    """
    values = init.detach().cpu().numpy() if isinstance(init, torch.Tensor) else np.asarray(init)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"init must be 'map', responsibilities (N, K) or integer labels (N,); "
                        f"got an array of dtype {values.dtype}.")
    if values.shape == (n,):
        if values.dtype.kind not in "iu":
            raise ValueError(f"init of shape ({n},) must hold integer labels in [0, {k}); got "
                             f"dtype {values.dtype}. Pass labels.astype(int), or (N, K) "
                             "responsibilities.")
        if values.min() < 0 or values.max() >= k:
            raise ValueError(f"init labels must lie in [0, {k}) for {k} components; got values "
                             f"from {values.min()} to {values.max()}.")
        resp = torch.nn.functional.one_hot(torch.as_tensor(values, dtype=torch.long), k)
        return resp.to(dtype=x.dtype, device=x.device), "labels"  # (N, K)
    if values.shape != (n, k):
        raise ValueError(f"init must be 'map', responsibilities of shape ({n}, {k}) or labels of "
                         f"shape ({n},) for {n} rows and {k} components; got shape "
                         f"{values.shape}.")
    values = values.astype(np.float64)
    sums = values.sum(1)
    if not np.isfinite(values).all() or (values < 0).any() or not np.all(
            np.isclose(sums, 1.0, atol=1e-6) | (sums == 0)) or not sums.any():
        raise ValueError("init responsibilities must be finite, non-negative and sum to 1 in "
                         "every row, or be 0 in a whole row to leave it out of the first update "
                         "(probabilities, not log-probabilities).")
    return torch.as_tensor(values, dtype=x.dtype, device=x.device), "responsibilities"


def check_warm_start(fit, model: GaussianMixture) -> None:
    """Raise unless ``fit`` is a CAVI fit of the same K, covariance family and weights prior."""
    same = (isinstance(fit, Fit) and fit.options.get("method") == "cavi"
            and getattr(fit.model, "family", None) is model.family
            and fit.n_components == model.n_components
            and fit.model.is_dirichlet_process == model.is_dirichlet_process)
    if not same:
        raise ValueError("warm_start must be a CAVI Fit (engine='svi', method='cavi') of a "
                         "GaussianMixture with the same n_components, covariance and "
                         "weights_prior.")


def q_from_fit(fit: Fit, shift: torch.Tensor, scale: float) -> MixturePosterior:
    """The q of a CAVI fit, in the coordinates (x - shift) / scale (tensors like ``shift``)."""
    q_np = fit.options["variational"]
    t = {key: torch.as_tensor(value, dtype=shift.dtype, device=shift.device)
         for key, value in q_np.items()}
    shape_name, inv_name = fit.model.family.conjugate.names
    conc = (torch.stack([t["sticks_concentration1"], t["sticks_concentration0"]])
            if "sticks_concentration1" in t else t["weight_concentration"])
    return MixturePosterior(conc, (t["means"] - shift) / scale, t["mean_precision"], t[shape_name],
              t[inv_name] / scale**2)
