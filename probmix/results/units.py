"""Fit on standardised columns, report in the data's own units.

``z = (x - center) / sd`` column by column is an affine map, so a Gaussian
mixture fitted to ``z`` is the same mixture of ``x`` with

    means_x = center + sd ⊙ means_z,   Σ_x = S Σ_z S,   Λ_x = S⁻¹ Λ_z S⁻¹,   S = diag(sd),

weights unchanged, the same responsibilities for every point, and densities
``log p(x) = log p(z) - Σ_d log sd_d``. A spherical covariance stops being
spherical when the columns are scaled differently: it comes back as a
diagonal one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

__all__ = ["standardize_columns", "to_original_units", "log_jacobian"]


def standardize_columns(x: np.ndarray):
    """Centre and scale each column.

    Parameters
    ----------
    x : ndarray (N, D)

    Returns
    -------
    z : ndarray (N, D)
        ``(x - center) / sd``.
    center : ndarray (D,)
        Column means.
    sd : ndarray (D,)
        Column standard deviations (1 for a constant column).
    """
    x = np.asarray(x, dtype=np.float64)
    center = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return (x - center) / sd, center, sd


def log_jacobian(sd: np.ndarray) -> float:
    """``Σ_d log sd_d``: subtract it from a log-density of z to get one of x."""
    return float(np.sum(np.log(sd)))


def _covariances(family, out_family, cov: np.ndarray, k: int, sd: np.ndarray) -> np.ndarray:
    """Native covariances (..., family shape) of z -> native covariances of x in out_family."""
    full = family.to_full(torch.as_tensor(cov, dtype=torch.float64), k, len(sd)).numpy()
    scaled = full * sd[:, None] * sd[None, :]                      # (..., K, D, D)
    return out_family.from_full(torch.as_tensor(scaled)).numpy()


def to_original_units(fit, x: np.ndarray, center: np.ndarray, sd: np.ndarray):
    """A Gaussian-mixture fit of standardised data, expressed in the units of ``x``.

    Parameters
    ----------
    fit : Fit
        Fitted to ``(x - center) / sd`` (a :class:`probmix.GaussianMixture` fit).
    x : ndarray (N, D)
        The data in its own units (kept as the fit's data for ArviZ).
    center, sd : ndarray (D,)
        From :func:`standardize_columns`.

    Returns
    -------
    Fit
        Point estimates and draws of ``weights``, ``means`` and ``covariances`` (and
        ``precisions``) in the units of ``x``; predictions on ``x`` match the original fit's on
        the standardised data. A spherical model comes back as a diagonal one.

    Raises
    ------
    TypeError
        If the fit is not of a GaussianMixture.
    """
    from probmix.infer.standardize import data_scale
    from probmix.model.gaussian_mixture import GaussianMixture

    if not isinstance(fit.model, GaussianMixture):
        raise TypeError("only fits of a probmix.GaussianMixture can be put back in the data's "
                        "units; standardise the data yourself for a custom program.")
    model = fit.model
    out_model = model
    if model.family.column_scaled() is not model.family:  # e.g. spherical comes back diagonal
        out_model = GaussianMixture(model.n_components, covariance=model.family.column_scaled(),
                                    prior=model.prior, weights_prior=model.weights_prior)
    family, out_family, k = model.family, out_model.family, model.n_components
    sd = np.asarray(sd, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)

    def convert(values: dict) -> dict:
        out = dict(values)
        if "means" in values:
            out["means"] = center + np.asarray(values["means"]) * sd
        if "covariances" in values:
            out["covariances"] = _covariances(family, out_family, values["covariances"], k, sd)
        if "precisions" in values:  # Λ_x = S⁻¹ Λ_z S⁻¹, i.e. the covariance rule with 1/sd
            out["precisions"] = _covariances(family, out_family, values["precisions"], k, 1 / sd)
        return out

    x = np.asarray(x, dtype=np.float64)
    x_t = torch.as_tensor(x)
    center_t = x_t.mean(0)
    return dataclasses.replace(
        fit, model=out_model, params=convert(fit.params), draws=convert(fit.draws),
        center=center_t.numpy(), scale=data_scale(x_t, center_t),
        data=None if fit.data is None else x,
        options={**fit.options, "standardized": {"center": center.tolist(), "sd": sd.tolist()}})
