"""The one ArviZ adapter: a :class:`~probmix.results.result.Fit` as an ArviZ DataTree, and its summary.

Built with ``arviz_base.from_dict`` (there is no Pyro converter in the ArviZ 1.x line).
Groups:

- ``posterior``: every draw site, dims (chain, draw, ...): the component axis of each site
  (from the model's :meth:`~probmix.model.interface.MixtureModel.component_axes`, for a
  Gaussian mixture and any program alike) is ``component``, other axes ``{site}_dim_{i}``;
  a Gaussian mixture has ``weights``, ``means``, ``precisions`` and ``covariances``, their
  feature axes ``feature`` and ``feature_bis``.
- ``log_likelihood``: ``obs`` (chain, draw, point) = log p(x_n | θ_s) with z summed out,
  what PSIS-LOO and WAIC need.
- ``observed_data``: ``obs`` (point, feature).
- ``posterior_predictive`` (when asked): ``obs`` (chain, draw, point, feature), N new points
  per draw (:mod:`probmix.results.predictive`).
- ``sample_stats``: sampler statistics (chain, draw) — for NUTS ``diverging``, ``tree_depth``,
  ``step_size``, ``acceptance_rate``, ``n_steps``, ``energy`` (for E-BFMI and the energy plot)
  and ``lp``; for SVI the loss history ``loss`` (chain, draw, step)
  with one (chain, draw) entry, since it is one optimisation, not one value per draw.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["to_arviz", "summary", "check_convergence", "ConvergenceDiagnosticWarning"]


class ConvergenceDiagnosticWarning(UserWarning):
    """r_hat above 1.01 or divergent transitions: the draws may not represent the posterior."""


def _traceable(data):
    """The fit's data as a tensor a program can be traced on (None when not kept)."""
    return None if data is None else torch.as_tensor(data)


def to_arviz(fit, *, log_likelihood: bool = True, posterior_predictive: bool = False,
             seed: int | None = 0):
    """An ArviZ DataTree of a fit with posterior draws (SVI or MCMC).

    Parameters
    ----------
    fit : Fit
    log_likelihood : bool
        Compute the pointwise log-likelihood group, shape (chain, draw, N) (costs
        draws × N × K log-densities).
    posterior_predictive : bool
        Add the ``posterior_predictive`` group: N new points per draw, (chain, draw, N, D).
    seed : int or None
        Seed of the posterior predictive draws.

    Returns
    -------
    xarray.DataTree
    """
    import arviz_base

    if not fit.draws:
        raise ValueError(
            f"to_arviz needs posterior draws; this fit (engine={fit.engine!r}) is a point "
            "estimate. Fit with engine='svi' or engine='mcmc'."
        )
    d = fit.n_features
    groups = {"posterior": {name: np.asarray(v) for name, v in fit.draws.items()}}
    mixture = fit.mixture
    axes = mixture.component_axes(_traceable(fit.data), list(fit.draws))
    dims = {name: mixture.site_dims(name, np.ndim(v) - 2, axes) for name, v in fit.draws.items()}
    c, s = next(iter(fit.draws.values())).shape[:2]
    if fit.data is not None:
        groups["observed_data"] = {"obs": fit.data}
        dims["obs"] = ["point", "feature"]
        if log_likelihood:
            groups["log_likelihood"] = {"obs": fit.pointwise_log_likelihood(fit.data)}
    stats = {name: np.asarray(v) for name, v in fit.sample_stats.items()}
    if len(fit.losses):
        stats["loss"] = np.broadcast_to(np.asarray(fit.losses), (c, 1, len(fit.losses))).copy()
        dims["loss"] = ["step"]
    if stats:
        groups["sample_stats"] = stats
    coords = {"component": np.arange(fit.n_components) if "weights" in fit.draws else None,
              "feature": np.arange(d), "feature_bis": np.arange(d)}
    coords = {k: v for k, v in coords.items() if v is not None}
    # 'obs' in observed_data is (point, feature), in log_likelihood (point): dims per group
    ll = groups.pop("log_likelihood", None)
    tree = arviz_base.from_dict(groups, dims=dims, coords=coords)
    if ll is not None:
        extra = arviz_base.from_dict({"log_likelihood": ll}, dims={"obs": ["point"]})
        tree["log_likelihood"] = extra["log_likelihood"]
    if posterior_predictive:
        if fit.data is None:
            raise ValueError("posterior_predictive=True needs the fit's data (N); this fit "
                             "does not keep it. Use fit.sample_posterior_predictive(n).")
        extra = arviz_base.from_dict(
            {"posterior_predictive": {"obs": fit.sample_posterior_predictive(seed=seed)}},
            dims={"obs": ["point", "feature"]}, coords={"feature": np.arange(d)})
        tree["posterior_predictive"] = extra["posterior_predictive"]
    tree.attrs.update(engine=fit.engine, model=repr(fit.model))
    return tree


def summary(fit, *, var_names=None, ci_prob: float = 0.94, round_to: int | None = 2):
    """ArviZ summary table (mean, sd, HDI, MCSE, ESS, r_hat) of a fit's draws.

    Parameters
    ----------
    fit : Fit
    var_names : list of str, optional
        Sites to include (default: all).
    ci_prob : float
        Probability mass of the credible interval (highest density).
    round_to : int or None
        Decimals shown (None: unrounded, for computing with the table).

    Returns
    -------
    pandas.DataFrame
        One row per scalar parameter. r_hat and ESS need at least two chains for r_hat
        (NaN otherwise, e.g. for SVI with one chain of independent draws).
    """
    import arviz_stats

    tree = to_arviz(fit, log_likelihood=False)
    with warnings.catch_warnings():
        # one chain (SVI): r_hat is undefined and arviz says so per variable
        warnings.filterwarnings("ignore", message=".*chain.*")
        return arviz_stats.summary(tree, var_names=var_names, ci_prob=ci_prob, ci_kind="hdi",
                                   round_to=round_to)


def check_convergence(fit, *, var_names=("weights", "means"), r_hat_max: float = 1.01,
                      stacklevel: int = 3) -> dict:
    """Warn, with remedies, when r_hat is above ``r_hat_max`` or NUTS diverged.

    Returns
    -------
    dict
        ``max_r_hat`` (NaN with one chain) and ``divergences`` (count).
    """
    import arviz_stats

    out = {"max_r_hat": float("nan"), "divergences": 0}
    chains = next(iter(fit.draws.values())).shape[0]
    if chains >= 2:
        tree = to_arviz(fit, log_likelihood=False)
        names = [n for n in var_names if n in fit.draws]
        names = names or list(fit.draws)
        rhat = arviz_stats.rhat(tree, var_names=names)  # the posterior group's r_hat per value
        values = np.concatenate([np.ravel(np.asarray(rhat[n].values)) for n in names])
        out["max_r_hat"] = float(np.nanmax(values))
        if out["max_r_hat"] > r_hat_max:
            if fit.options.get("relabelled", True):
                what = "after relabelling: the chains disagree. Run longer (num_samples, " \
                    "num_warmup), use more chains (num_chains), or check that the model has " \
                    "well-separated components (too many components also do this)."
            else:
                what = "on draws that were not relabelled: label switching alone raises r_hat " \
                    "(the chains may visit permuted copies of one mode). Fit with " \
                    "relabel=True before judging convergence."
            warnings.warn(f"max r_hat = {out['max_r_hat']:.3f} > {r_hat_max} {what}",
                          ConvergenceDiagnosticWarning, stacklevel=stacklevel)
    if "diverging" in fit.sample_stats:
        out["divergences"] = int(np.sum(fit.sample_stats["diverging"]))
        if out["divergences"]:
            warnings.warn(
                f"{out['divergences']} divergent transitions: the sampler could not follow the "
                "posterior's geometry there. Raise target_accept_prob (e.g. 0.9), reparametrise, "
                "or use method='gibbs' for a conjugate GaussianMixture.",
                ConvergenceDiagnosticWarning, stacklevel=stacklevel)
    return out
