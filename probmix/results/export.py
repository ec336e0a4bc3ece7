"""Fitted parameters as plain JSON-ready data: estimates with their uncertainty."""

from __future__ import annotations

import numpy as np

__all__ = ["parameter_summary"]


def _sites(fit) -> dict:
    """Name -> (point estimate, draws or None); a Gaussian mixture's covariances as full matrices."""
    if not fit.mixture.gaussian:
        return {n: (np.asarray(v), fit.draws.get(n)) for n, v in fit.params.items()}
    return {"weights": (fit.weights, fit.draws.get("weights")),
            "means": (fit.means, fit.draws.get("means")),
            "covariances": (fit.covariances,
                            fit.covariance_draws if "covariances" in fit.draws else None)}


def parameter_summary(fit, *, prob: float = 0.94) -> dict:
    """Every global parameter of a fit with its uncertainty.

    Parameters
    ----------
    fit : Fit
    prob : float
        Mass of the equal-tailed credible interval (quantiles ``(1 - prob) / 2`` and
        ``(1 + prob) / 2`` of the draws).

    Returns
    -------
    dict
        ``{"engine", "method", "estimate", "parameters"}``. For a MAP fit ``estimate`` is
        ``"posterior mode"`` and each parameter is its value (nested lists); otherwise
        ``"posterior mean"`` and each parameter is ``{"mean", "sd", "low", "high"}`` (nested
        lists shaped like the parameter) with ``"interval"`` giving ``prob``. A
        GaussianMixture reports ``weights`` (K,), ``means`` (K, D) and ``covariances``
        (K, D, D) as full matrices.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1); got {prob!r}.")
    method = fit.options.get("method", fit.options.get("kernel"))
    out = {"engine": fit.engine, "method": method, "n_features": fit.n_features}
    if "weights" in fit.params:
        out["n_components"] = fit.n_components
    if not fit.draws:
        out["estimate"] = "posterior mode"
        out["parameters"] = {n: np.asarray(v).tolist() for n, (v, _) in _sites(fit).items()}
        return out
    out["estimate"] = "posterior mean"
    out["interval"] = {"kind": "equal-tailed", "prob": prob}
    lo, hi = (1 - prob) / 2, (1 + prob) / 2
    params = {}
    for name, (value, draws) in _sites(fit).items():
        if draws is None:
            params[name] = {"mean": np.asarray(value).tolist()}
            continue
        flat = np.asarray(draws, dtype=np.float64).reshape(-1, *np.shape(draws)[2:])  # (S, ...)
        q = np.quantile(flat, [lo, hi], axis=0)
        params[name] = {"mean": np.asarray(value).tolist(), "sd": flat.std(axis=0).tolist(),
                        "low": q[0].tolist(), "high": q[1].tolist()}
    out["parameters"] = params
    return out
