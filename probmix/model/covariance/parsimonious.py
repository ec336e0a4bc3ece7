"""The parsimonious families of mclust that the four built-ins do not cover.

Σ_k = λ_k D_k A_k D_kᵀ with volume, shape and orientation each Equal, Variable or (shape,
orientation) the Identity (Celeux & Govaert 1995). The built-ins are four of mclust's 14
models: ``spherical`` = VII, ``diag`` = VVI, ``tied`` = EEE and ``full`` = VVV; this module
adds the other ten: EII, EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV.

They store full (K, D, D) covariances and share the full family's features, natural weights
and E-step; only the M-step differs: the constrained estimate of
:func:`probmix.model.parsimonious.constrained_covariances` from the scatter matrices, for
maximum likelihood, or from the conjugate posterior's W_k⁻¹ = Ψ₀ + S_k + B_k and
ν₀ + n_k - D for the MAP estimate (the mode of the product of the components' Normal-
Wishart priors restricted to the model). Their parameter counts are mclust's.

They have no conjugate posterior (the constraint couples the components), so CAVI and Gibbs
refuse them, and no Pyro prior, so NUTS and SVI refuse them too: fit them with
``engine="map"``.
"""

from __future__ import annotations

from probmix.model.covariance.conjugate import WishartPrecision
from probmix.model.covariance.full import FullCovariance
from probmix.model.covariance.registry import FAMILIES, get_family
from probmix.model.parsimonious import constrained_covariances, n_covariance_parameters

__all__ = ["ParsimoniousCovariance", "NEW_MODELS"]

NEW_MODELS = ("EII", "EEI", "VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV")
_WISHART = WishartPrecision(tied=False)

# the model of S Σ_k S for a diagonal S (columns rescaled): the volume survives as E/V when
# the determinant ratio survives; a common orientation or shape does not survive rotation
_COLUMN_SCALED = {"EII": "EEI", "EEI": "EEI", "VEI": "VEI", "EVI": "EVI", "VEE": "VEE",
                  "EVE": "EVV", "VVE": "full", "EEV": "EVV", "VEV": "full", "EVV": "EVV"}


class ParsimoniousCovariance(FullCovariance):
    """One of mclust's constrained models (``name`` its three letters), stored as full matrices.

    Parameters
    ----------
    name : str
        One of :data:`NEW_MODELS`.
    """

    conjugate = None  # no conjugate posterior: CAVI and Gibbs refuse the family

    def __init__(self, name: str):
        if name not in NEW_MODELS:
            raise ValueError(f"name must be one of {NEW_MODELS}; got {name!r}.")
        self.name = name

    def __repr__(self) -> str:
        return f"ParsimoniousCovariance({self.name!r})"

    def n_cov_parameters(self, k, d):
        return n_covariance_parameters(self.name, k, d)

    def column_scaled(self):
        return get_family(_COLUMN_SCALED[self.name])

    def posterior_mode(self, nk, sx, sq, *, prior, reg_covar, start=None):
        """Means and constrained covariances at the posterior mode (EM's M-step).

        As :meth:`CovarianceFamily.posterior_mode`; the covariances solve
        min Σ_k [ñ_k log|Σ_k| + tr(Σ_k⁻¹ W̃_k)] within the model, with (W̃, ñ) = (S, n) for
        maximum likelihood and (Ψ₀ + S_k + B_k, ν₀ + n_k - D) under the prior.
        """
        d = sx.shape[-1]
        if prior is None:
            means = sx / nk[..., None]
            scatter, counts = self.scatter(nk, sx, sq), nk
        else:
            post = self.posterior(nk, sx, sq, prior, conjugate=_WISHART)
            means, scatter, counts = post.means, post.inv, post.shape - d
        scatter = 0.5 * (scatter + scatter.transpose(-1, -2))
        return means, self.add_ridge(
            constrained_covariances(self.name, scatter, counts, start=start), reg_covar)

    def log_prior_density(self, prior, means, prec):
        """The unconstrained full family's log density at the constrained parameters: the
        MAP objective's prior term, up to the constant that restricting the prior to the
        model would add (EM reports it; it does not change the mode)."""
        k, d = means.shape[-2:]
        lp = FullCovariance.precision_prior(self, prior, k, d).log_prob(prec).sum(-1)
        return lp + FullCovariance.mean_prior(self, prior, prec, k, d).log_prob(means).sum(-1)

    def _no_pyro_prior(self):
        usable = sorted(name for name, f in FAMILIES.items()
                        if not isinstance(f, ParsimoniousCovariance))
        raise ValueError(
            f"covariance={self.name!r} has no Pyro program (its constraint ties the components "
            f"together, which no standard distribution expresses), so SVI, NUTS, CAVI and "
            f"Gibbs cannot fit it. Fit it with engine='map' (closed-form EM), or use one of "
            f"the families the posterior engines take: {usable}.")

    def precision_prior(self, prior, k, d):
        self._no_pyro_prior()

    def mean_prior(self, prior, prec, k, d):
        self._no_pyro_prior()

