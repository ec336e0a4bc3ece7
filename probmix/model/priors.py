"""Priors on the Gaussian mixture's weights, means and precisions.

The default prior is conjugate: a symmetric Dirichlet on the weights and a
Normal-Wishart on each component's (mean, precision), with diagonal, spherical
and tied analogues (see :mod:`probmix.model.covariance`). Written for precisions Λ:

    weights      ~ Dirichlet(weight_concentration)
    precision_k  ~ Wishart(dof, scale⁻¹)        (E[Λ] = dof · scale⁻¹)
    mean_k | Λ_k ~ Normal(mean_loc, (mean_precision · Λ_k)⁻¹)

``scale`` is a covariance-like (D, D) matrix (the inverse of the Wishart scale
matrix). ``prior="default"`` fills every ``None`` field from the data, after
Fraley & Raftery (2007, mclust's ``priorControl``), so that it regularises without
distorting the components:

- ``mean_loc`` = the data mean, ``mean_precision`` β₀ = 0.01 (mclust's shrinkage κ): the
  means are barely pulled towards the centre (β₀ n_k / (β₀ + n_k) ≈ 0.01);
- ``scale`` Ψ₀ = cov(x) / K^(2/D): the covariance of one of K clusters that share the data's
  volume, not the whole data's covariance (which holds the spread *between* clusters);
  (with Dirichlet-process weights, whose K is only a truncation, the default stays
  scikit-learn's ``BayesianGaussianMixture`` one: Ψ₀ = cov(x), β₀ = 1, ν₀ = D);
- ``dof`` ν₀ = D + 2 for the Wishart families, so that the MAP covariance is
  (Ψ₀ + S_k + B_k) / (n_k + 2): Ψ₀ counts as two pseudo-observations; the diag and
  spherical families take the ν₀ that gives them the same n_k + 2
  (:meth:`CovarianceFamily.default_prior_dof`);
- ``weight_concentration`` = 1 (uniform on the simplex, so the MAP weights exist).

(Until issue 16 the default was scikit-learn's: Ψ₀ = cov(x), β₀ = 1, ν₀ = D, which inflated
a tight cluster's variance by 69% at n = 200 per component; pass those values explicitly
to get it back.) ``prior="flat"`` declares improper flat priors: MAP is maximum likelihood.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from probmix.io import persistence

__all__ = ["Prior", "ResolvedPrior", "resolve_prior", "DEFAULT_MEAN_PRECISION"]

DEFAULT_MEAN_PRECISION = 0.01  # β₀: Fraley & Raftery's (mclust's) mean shrinkage κ


@persistence.register("Prior", role="value")
@dataclass(frozen=True)
class Prior:
    """Conjugate prior of a Gaussian mixture; ``None`` fields are filled from the data.

    Parameters
    ----------
    weight_concentration : float or array (K,), optional
        Dirichlet concentration α. Default 1 (uniform). MAP needs α >= 1.
    mean_loc : array (D,), optional
        Prior mean m₀ of the component means. Default: the data mean.
    mean_precision : float, optional
        β₀ > 0: pseudo-count of the mean prior. Default 0.01.
    dof : float, optional
        Degrees of freedom ν₀ of the precision prior (> D - 1 for a Wishart). Default D + 2
        (the family's :meth:`~probmix.model.covariance.base.CovarianceFamily.default_prior_dof`).
    scale : array (D, D), optional
        Positive definite Ψ₀ (the Wishart scale is Ψ₀⁻¹). Default: the data covariance
        divided by K^(2/D).
    """

    weight_concentration: float | np.ndarray | None = None
    mean_loc: np.ndarray | None = None
    mean_precision: float | None = None
    dof: float | None = None
    scale: np.ndarray | None = None

    def _probmix_state(self) -> persistence.State:
        """Its fields, as a model declaration in a saved file holds them."""
        return persistence.State({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def _from_probmix_state(cls, fields: dict, context) -> "Prior":
        return cls(**fields)


class ResolvedPrior(NamedTuple):
    """A prior with every field a tensor. Shapes: alpha (K,), mean_loc (D,), scale (D, D)."""

    alpha: torch.Tensor
    mean_loc: torch.Tensor
    mean_precision: torch.Tensor
    dof: torch.Tensor
    scale: torch.Tensor
    stick_breaking: bool = False  # weights from a truncated Dirichlet process (alpha holds γ)

    def affine(self, shift: torch.Tensor, scale: float) -> "ResolvedPrior":
        """The same prior for data mapped as x' = (x - shift) / scale."""
        return self._replace(mean_loc=(self.mean_loc - shift) / scale,
                             scale=self.scale / scale**2)


def _data_moments(x: torch.Tensor | None, d: int, sample_weight=None, moments=None):
    if moments is not None:  # (mean, unbiased covariance) computed elsewhere (streaming fits)
        mean, cov = moments
    elif x is None:  # no data to scale to: the standardised default
        return torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
    else:
        w = torch.ones(x.shape[0], dtype=x.dtype, device=x.device) if sample_weight is None \
            else sample_weight
        total = w.sum()
        mean = (w @ x) / total
        xc = x - mean
        denom = (total - 1.0).clamp_min(1.0)  # unbiased like np.cov; one row gives 0 / 1
        cov = (xc * w[:, None]).T @ xc / denom
    # Ψ₀ must be positive definite: a constant feature gets the mean variance of the
    # others, and a ridge of 1e-9 of each feature's variance covers exactly collinear ones.
    var = torch.diagonal(cov)
    positive = var > 0
    fill = var[positive].mean() if bool(positive.any()) else torch.ones((), dtype=cov.dtype)
    cov = cov + torch.diag(torch.where(positive, torch.zeros_like(var), fill))
    cov = cov + torch.diag(1e-9 * torch.diagonal(cov))  # per feature: follows any rescaling
    return mean, cov


def resolve_prior(
    prior: Prior | str,
    *,
    n_components: int,
    n_features: int,
    x: torch.Tensor | None = None,
    sample_weight: torch.Tensor | None = None,
    device=None,
    dtype=torch.float64,
    stick_breaking: bool = False,
    moments: tuple | None = None,
    family=None,
) -> ResolvedPrior | None:
    """Fill a :class:`Prior` from the data; ``"flat"`` gives ``None`` (no prior).

    Parameters
    ----------
    prior : Prior, "default" or "flat"
    n_components, n_features : int
    x : Tensor (N, D), optional
        Data the default prior is scaled to; without it, mean 0 and scale I.
    stick_breaking : bool
        The weights have the truncated Dirichlet-process prior (``alpha`` then holds γ K times).
    moments : (Tensor (D,), Tensor (D, D)), optional
        The data's mean and unbiased covariance, when ``x`` is not in memory (streaming and
        distributed fits); used instead of ``x``.
    family : CovarianceFamily, optional
        Sets the default ν₀ and its lower bound (a Wishart's D - 1 without it).
    """
    if isinstance(prior, str):
        if prior == "flat":
            return None
        if prior != "default":
            raise ValueError(
                f"prior must be 'default', 'flat' or a probmix.Prior(...); got {prior!r}."
            )
        prior = Prior()
    if not isinstance(prior, Prior):
        raise TypeError(
            f"prior must be 'default', 'flat' or a probmix.Prior(...); got {type(prior).__name__}."
        )
    K, D = n_components, n_features
    device = x.device if (device is None and x is not None) else (device or "cpu")
    opts = dict(device=device, dtype=dtype)
    data_mean, data_cov = _data_moments(x, D, sample_weight, moments)

    alpha = torch.as_tensor(1.0 if prior.weight_concentration is None
                            else prior.weight_concentration, **opts)
    alpha = alpha.expand(K).clone() if alpha.ndim == 0 else alpha
    if alpha.shape != (K,) or not bool((alpha > 0).all()):
        raise ValueError(
            f"Prior.weight_concentration must be a positive float or an array of shape ({K},); "
            f"got {prior.weight_concentration!r}."
        )
    mean_loc = data_mean if prior.mean_loc is None else torch.as_tensor(
        np.asarray(prior.mean_loc, dtype=np.float64))
    mean_loc = mean_loc.to(**opts).reshape(-1)
    if mean_loc.shape != (D,):
        raise ValueError(f"Prior.mean_loc must have shape ({D},); got {tuple(mean_loc.shape)}.")
    if not bool(torch.isfinite(mean_loc).all()):
        raise ValueError(f"Prior.mean_loc (mean_prior) must be finite; got "
                         f"{mean_loc.tolist()}. Pass finite values, or None for the data mean.")
    # Dirichlet-process weights keep scikit-learn's BayesianGaussianMixture defaults (Ψ₀ =
    # cov(x), β₀ = 1, ν₀ = D): its K is a truncation, not a number of clusters, and the
    # sparsity of its posterior was measured with them
    beta = torch.as_tensor((1.0 if stick_breaking else DEFAULT_MEAN_PRECISION)
                           if prior.mean_precision is None else prior.mean_precision, **opts)
    if beta.ndim != 0 or not float(beta) > 0:
        raise ValueError(f"Prior.mean_precision must be a float > 0; got {prior.mean_precision!r}.")
    default_dof = float(D) if stick_breaking else (
        D + 2.0 if family is None else family.default_prior_dof(D))
    min_dof = D - 1.0 if family is None else family.min_prior_dof(D)
    dof = torch.as_tensor(default_dof if prior.dof is None else prior.dof, **opts)
    if dof.ndim != 0 or not float(dof) > min_dof:
        raise ValueError(
            f"Prior.dof must be a float > {min_dof:g}"
            + (" (n_features - 1 for a Wishart prior)" if min_dof == D - 1 else "")
            + f"; got {prior.dof!r}."
        )
    clusters = 1 if stick_breaking else K  # K clusters share the data's volume
    scale = data_cov / clusters ** (2.0 / D) if prior.scale is None else torch.as_tensor(
        np.asarray(prior.scale, dtype=np.float64))
    scale = scale.to(**opts)
    if scale.ndim == 0:
        scale = scale * torch.eye(D, **opts)
    if scale.shape != (D, D) or not bool(torch.allclose(scale, scale.T)):
        raise ValueError(
            f"Prior.scale must be a symmetric ({D}, {D}) matrix; got shape {tuple(scale.shape)}."
        )
    if torch.linalg.cholesky_ex(scale).info.item() != 0:
        raise ValueError("Prior.scale must be positive definite; got a matrix that is not.")
    return ResolvedPrior(alpha, mean_loc, beta, dof, scale, stick_breaking)
