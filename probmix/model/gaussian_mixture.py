"""The Gaussian mixture, declared as a Pyro program.

Generative story for K components in D dimensions (see :mod:`probmix.model.priors`)::

    weights            ~ Dirichlet(α)                              site "weights"     (K,)
    for k in components:                                             plate "components"
        precisions[k]  ~ Wishart(ν₀, Ψ₀⁻¹)  (family analogue)      site "precisions"
        means[k]       ~ Normal(m₀, (β₀ precisions[k])⁻¹)           site "means"       (K, D)
    for n in data:                                                   plate "data"
        z[n]           ~ Categorical(weights)   (enumerated)         site "z"
        x[n]           ~ Normal(means[z[n]], precisions[z[n]]⁻¹)    site "obs"

The tied family samples one shared precision outside the components plate.

With ``weights_prior="dirichlet_process"`` the weights come from a truncated
stick-breaking Dirichlet process instead (site "sticks", K - 1 values)::

    sticks[j] ~ Beta(1, γ),  j < K - 1                              site "sticks"      (K-1,)
    weights[k] = sticks[k] Π_{j<k} (1 - sticks[j]),  weights[K-1] = Π_j (1 - sticks[j])

so the posterior can leave components empty (γ = ``Prior.weight_concentration``;
small γ favours few components). ``weights`` is then a deterministic site.
With ``prior="flat"`` the means and precisions carry improper flat priors and
the weights a uniform Dirichlet: the posterior mode is the maximum likelihood.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.ops.indexing import Vindex

from probmix._random import quiet_singular_samples, seeded
from probmix._validation import check_int
from probmix.infer.standardize import data_scale
from probmix.model.weights import stick_breaking  # re-exported: its home before weights.py
from probmix.io.data import check_squares_finite
from probmix.io import persistence
from probmix.model.covariance import FAMILIES, get_family
from probmix.model.interface import MixtureModel
from probmix.model.params import MixtureParams, as_params
from probmix.model.priors import Prior, ResolvedPrior, resolve_prior

__all__ = ["GaussianMixture", "MixtureParams", "as_params", "stick_breaking", "WEIGHTS_PRIORS"]
# MixtureParams and as_params live in probmix.model.params; engines import them from here too.

WEIGHTS_PRIORS = ("dirichlet", "dirichlet_process")
_CHUNK_BYTES = 2**20  # Φ chunk of about 1 MiB in log_joint (the E-step's chunking)
_MAX_CHUNK_BYTES = 64 * 2**20  # ... and never above 64 MiB (2,048 rows of wide data: gigabytes)


@persistence.register("GaussianMixture", role="model")
class GaussianMixture(MixtureModel):
    """A Gaussian mixture with a conjugate prior, declared as a Pyro program.

    It implements :class:`~probmix.model.interface.MixtureModel`: the log joint per
    component, the component axes of its sites, its parameter count and sampling.

    Parameters
    ----------
    n_components : int
        Number of components K >= 1.
    covariance : {"full", "diag", "spherical", "tied"} or CovarianceFamily
    prior : "default", "flat" or Prior
        "default": weakly informative, scaled to the data (see :mod:`probmix.model.priors`);
        "flat": improper flat priors, so the MAP estimate is maximum likelihood.
    weights_prior : {"dirichlet", "dirichlet_process"}
        "dirichlet": symmetric Dirichlet(α) weights; "dirichlet_process": truncated
        stick-breaking with concentration γ = ``Prior.weight_concentration`` (default 1), for
        starting with K large and letting the posterior switch components off (K >= 2).

    Examples
    --------
    >>> model = GaussianMixture(3, covariance="full")
    >>> x, z = model.sample(500, seed=0, params={"weights": [0.5, 0.5],
    ...     "means": [[0, 0], [3, 3]], "covariances": [[[1, 0], [0, 1]]] * 2})  # doctest: +SKIP
    """

    def __init__(self, n_components: int, *, covariance="full", prior="default",
                 weights_prior: str = "dirichlet"):
        self.n_components = check_int(n_components, "n_components", minimum=1)
        self.family = get_family(covariance)
        if not (isinstance(prior, Prior) or prior in ("default", "flat")):
            raise ValueError(
                f"prior must be 'default', 'flat' or a probmix.Prior(...); got {prior!r}."
            )
        if weights_prior not in WEIGHTS_PRIORS:
            raise ValueError(f"weights_prior must be one of {WEIGHTS_PRIORS}; got {weights_prior!r}.")
        if weights_prior == "dirichlet_process" and self.n_components < 2:
            raise ValueError("weights_prior='dirichlet_process' needs n_components >= 2 (the "
                             "truncation level); got 1.")
        self.prior = prior
        self.weights_prior = weights_prior

    def __repr__(self) -> str:
        extra = "" if self.weights_prior == "dirichlet" else f", weights_prior={self.weights_prior!r}"
        return (f"GaussianMixture(n_components={self.n_components}, "
                f"covariance={self.covariance!r}, prior={self.prior!r}{extra})")

    @property
    def is_dirichlet_process(self) -> bool:
        """Whether the weights have the truncated stick-breaking prior."""
        return self.weights_prior == "dirichlet_process"

    @property
    def covariance(self) -> str:
        """Name of the covariance family."""
        return self.family.name

    def resolve_prior(self, x: torch.Tensor | None = None, *, n_features: int | None = None,
                      sample_weight=None, dtype=torch.float64, device=None,
                      moments=None) -> ResolvedPrior | None:
        """The prior with every field a tensor, scaled to ``x`` when given; None when flat.

        ``moments`` = (mean (D,), unbiased covariance (D, D)) replaces ``x`` when the data are
        not in memory.
        """
        d = x.shape[1] if x is not None else n_features
        if x is not None:
            check_squares_finite(x)  # every engine resolves the prior: one place for the check
            dtype, device = x.dtype, x.device
        elif moments is not None:
            d = moments[0].shape[0]
            dtype, device = moments[0].dtype, moments[0].device
        return resolve_prior(self.prior, n_components=self.n_components, n_features=d, x=x,
                             sample_weight=sample_weight, dtype=dtype, device=device,
                             stick_breaking=self.is_dirichlet_process, moments=moments,
                             family=self.family)

    def n_parameters(self, n_features: int, *, x=None) -> int:
        """Number of free parameters (weights, means, covariances) in D = n_features dimensions."""
        return self.family.n_parameters(self.n_components, n_features)

    def _probmix_state(self) -> persistence.State | None:
        """Its constructor arguments (None for a family probmix does not know by name)."""
        if type(FAMILIES.get(self.family.name)) is not type(self.family):
            return None  # a user's own CovarianceFamily: saved by reference, like code
        return persistence.State({"n_components": self.n_components,
                                  "covariance": self.family.name, "prior": self.prior,
                                  "weights_prior": self.weights_prior})

    @classmethod
    def _from_probmix_state(cls, fields: dict, context) -> "GaussianMixture":
        return cls(fields.get("n_components"), covariance=fields.get("covariance"),
                   prior=fields.get("prior"), weights_prior=fields.get("weights_prior"))

    # --- the MixtureModel interface -----------------------------------------------------------
    gaussian = True
    signature_site = "means"

    def log_joint(self, params, x: torch.Tensor, *, shift=None, scale: float = 1.0):
        """log π_k + log N(x_n | μ_k, Σ_k) for B parameter sets, shape (B, N, K).

        ``params``: ``weights`` (B, K), ``means`` (B, K, D), ``covariances`` (B, native shape).
        Computed in x' = (x - shift) / scale as W_k · Φ(x') (the E-step's exponential-family
        features, see :mod:`probmix.model.covariance`), which keeps the expansion of the
        squares accurate, then mapped back by the Jacobian -D log(scale).
        """
        family, opts = self.family, dict(dtype=x.dtype, device=x.device)
        n, d = x.shape
        center = torch.zeros(d, **opts) if shift is None else torch.as_tensor(shift, **opts)
        means = (torch.as_tensor(params["means"], **opts) - center) / scale  # (B, K, D)
        cov = torch.as_tensor(params["covariances"], **opts) / scale**2
        prec_chol, _ = family.precision_cholesky(cov)
        w = family.natural_weights(means, prec_chol)  # (B, K, F)
        w[..., 0] += torch.log(torch.as_tensor(params["weights"], **opts))
        b, k, f = w.shape
        xt = ((x - center) / scale).T.contiguous()  # (D, N)
        per_row = xt.element_size() * f  # Φ bytes per row: ~D²/2 numbers for full covariances
        floor = max(1, min(2048, _MAX_CHUNK_BYTES // per_row))  # wide data: at most 64 MiB
        rows = int(min(16384, max(floor, _CHUNK_BYTES // per_row)))
        out = [(w.reshape(b * k, f) @ family.features(xt[:, s:s + rows])).view(b, k, -1)
               for s in range(0, n, rows)]  # (B, K, rows) each
        return torch.cat(out, -1).transpose(1, 2) - d * math.log(scale)

    def component_axes(self, x=None, sites=None) -> dict[str, int]:
        """Component axis (negative) of each site; the tied precision has none."""
        axes = {"weights": -1, "means": -2}
        if not self.family.tied:
            axis = -1 - self.family.precision_event_dims
            axes.update(precisions=axis, covariances=axis)
        return axes if sites is None else {n: a for n, a in axes.items() if n in sites}

    def site_dims(self, name: str, ndim: int, axes: dict) -> list[str]:
        """As :meth:`MixtureModel.site_dims`, the axes after the component named ``feature``
        and ``feature_bis`` (means, precisions and covariances)."""
        if name not in ("weights", "means", "precisions", "covariances"):
            return super().site_dims(name, ndim, axes)
        dims = ["component"] if name in axes else []
        return dims + ["feature", "feature_bis"][:ndim - len(dims)]

    def complete_draws(self, draws: dict) -> dict:
        """Adds ``covariances`` (native shape) computed from the ``precisions`` draws."""
        cov = self._covariance(torch.as_tensor(draws["precisions"]))
        return {**draws, "covariances": cov.numpy()}

    def _covariance(self, prec: torch.Tensor) -> torch.Tensor:
        """Native covariances from native precisions, also for draws too ill-conditioned for
        a Cholesky factor (a broad guide's tail, an empty component): a plain inverse then."""
        try:
            return self.family.covariance_from_precision(prec)
        except torch.linalg.LinAlgError:
            return torch.linalg.inv(prec)

    def relabel_signatures(self, values: dict, axes: dict, batch_ndim: int) -> np.ndarray:
        """The whole parameter of each component, (*batch, K, P): its mean, log weight and
        log variances (the diagonal of Σ_k; from ``covariances`` or ``precisions``), so that a
        draw whose means alone fit two labels equally is placed by its other parameters.
        A site missing from ``values`` (or a tied covariance) is left out."""
        parts = [np.asarray(values["means"], dtype=np.float64)]  # (*batch, K, D)
        if "weights" in values:
            w = np.asarray(values["weights"], dtype=np.float64)
            parts.append(np.log(np.maximum(w, np.finfo(np.float64).tiny))[..., None])
        if not self.family.tied and ("covariances" in values or "precisions" in values):
            if "covariances" in values:
                cov = torch.as_tensor(np.asarray(values["covariances"], dtype=np.float64))
            else:
                prec = torch.as_tensor(np.asarray(values["precisions"], dtype=np.float64))
                cov = self._covariance(prec)
            k, d = parts[0].shape[-2:]
            full = self.family.to_full(cov.reshape(-1, *cov.shape[batch_ndim:]), k, d)
            var = torch.diagonal(full, dim1=-2, dim2=-1).numpy()  # (B, K, D)
            parts.append(np.log(np.maximum(var, np.finfo(np.float64).tiny))
                         .reshape(*parts[0].shape[:-1], d))
        return np.concatenate(parts, -1)

    def point_estimates(self, draws: dict) -> dict:
        """Posterior means, except ``covariances``: the inverse of the posterior mean of the
        precision draws. E[Σ_k] need not exist (an inverse Wishart has no mean for ν ≤ D + 1,
        e.g. an empty component under ν₀ = D), and where it exists a handful of wide draws
        dominates its average; E[Λ_k] always exists (Wishart/Gamma draws)."""
        out = super().point_estimates(draws)
        if "precisions" in out:
            prec = torch.as_tensor(out["precisions"])
            out["covariances"] = self._covariance(prec).numpy()
        return out

    def standardisation(self, x: torch.Tensor):
        """The data's mean and root mean per-feature variance (the engines' coordinates)."""
        center = x.mean(0)
        return center.cpu().numpy(), data_scale(x, center)

    def full_covariances(self, covariances, n_components: int, n_features: int) -> np.ndarray:
        """Covariances in the family's native shape (..., native) as (..., K, D, D)."""
        cov = torch.as_tensor(np.asarray(covariances))
        return self.family.to_full(cov, n_components, n_features).numpy().copy()

    def program(self, x: torch.Tensor | None = None, *, n: int | None = None,
                n_features: int | None = None):
        """The Pyro model, its default prior scaled to ``x``.

        Parameters
        ----------
        x : Tensor (N, D), optional
            Observed data; None to sample ``n`` points of ``n_features`` dimensions.
        n, n_features : int, optional
            Size of the data plate and D when ``x`` is None.

        Returns
        -------
        Tensor (N, D)
            The observations (sampled when ``x`` is None).
        """
        if x is not None:
            d, opts = x.shape[1], dict(dtype=x.dtype, device=x.device)
        else:
            d, opts = self._n_features(n_features), dict(dtype=torch.float64, device="cpu")
        prior = self.resolve_prior(x, n_features=d, **opts)
        return self._program(x, prior=prior, n=n, n_features=d)

    def program_for(self, x: torch.Tensor, *, shift: torch.Tensor | None = None,
                    scale: float = 1.0):
        """The Pyro model with its prior fixed from the full data ``x``.

        Parameters
        ----------
        x : Tensor (N, D)
            The data the prior is resolved from (the default prior is scaled to it).
        shift : Tensor (D,), optional
        scale : float
            Give the program for data in coordinates x' = (x - shift) / scale (the prior is
            mapped accordingly), which engines use to work on standardised data.

        Returns
        -------
        callable
            ``program(x_batch, *, subsample=None, n=None)``: keeps that prior whatever rows it is
            given (mini-batches, repeated NUTS evaluations); ``n`` (default: the rows of
            ``x_batch``) is the size of the data plate, and ``subsample`` the indices of the
            rows of ``x_batch`` when it is a mini-batch of an ``n``-row data set.
        """
        prior = self.resolve_prior(x)
        if prior is not None and (shift is not None or scale != 1.0):
            prior = prior.affine(torch.zeros_like(x[0]) if shift is None else shift, scale)
        d = x.shape[1]

        def program(x_batch=None, *, subsample=None, n=None):
            return self._program(x_batch, prior=prior, n=n, n_features=d, subsample=subsample)

        program.__doc__ = f"{self!r} with its prior fixed from {x.shape[0]} rows."
        return program

    def _program(self, x, *, prior, n=None, n_features=None, subsample=None):
        K = self.n_components
        d = x.shape[1] if x is not None else n_features
        if n is None:
            n = x.shape[0]
        opts = dict(dtype=x.dtype, device=x.device) if x is not None else \
            dict(dtype=torch.float64, device="cpu")
        family = self.family
        alpha = prior.alpha if prior is not None else torch.ones(K, **opts)
        if self.is_dirichlet_process:
            with pyro.plate("sticks_plate", K - 1):
                sticks = pyro.sample("sticks", dist.Beta(torch.ones_like(alpha[:-1]), alpha[:-1]))
            weights = pyro.deterministic("weights", stick_breaking(sticks), event_dim=1)
        else:
            weights = pyro.sample("weights", dist.Dirichlet(alpha))
        if family.tied:
            precisions = pyro.sample("precisions", family.precision_prior(prior, K, d))
            with pyro.plate("components", K):
                means = pyro.sample("means", family.mean_prior(prior, precisions, K, d))
        else:
            with pyro.plate("components", K):
                precisions = pyro.sample("precisions", family.precision_prior(prior, K, d))
                means = pyro.sample("means", family.mean_prior(prior, precisions, K, d))
        with pyro.plate("data", n, subsample=subsample):
            z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
            loc = Vindex(means)[..., z, :]
            return pyro.sample("obs", family.likelihood(loc, family.select(precisions, z)), obs=x)

    def _n_features(self, n_features):
        if n_features is not None:
            return int(n_features)
        if isinstance(self.prior, Prior) and self.prior.mean_loc is not None:
            return int(np.asarray(self.prior.mean_loc).reshape(-1).shape[0])
        raise ValueError("n_features is needed to sample without data or parameters.")

    def sample(self, n: int, *, seed: int, params=None, n_features: int | None = None):
        """Draw (x, z) from the model.

        Parameters
        ----------
        n : int
            Number of points.
        seed : int
            Random seed (the global torch RNG is left untouched).
        params : dict, optional
            ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D or native): draw from
            this mixture. Without it, draw from the prior predictive (parameters from the prior
            first; the default prior then is the standardised one, mean 0 and scale I).
        n_features : int, optional
            D for the prior predictive when neither ``params`` nor ``Prior.mean_loc`` gives it.

        Returns
        -------
        x : ndarray (n, D)
        z : ndarray (n,) int
            The component of each point.
        """
        n = check_int(n, "n", minimum=1)
        program = self.program
        if params is not None:
            p = as_params(params, self.family, n_components=self.n_components, n_features=None)
            n_features = p.means.shape[-1]
            prec_chol, _ = self.family.precision_cholesky(p.covariances)
            data = {"weights": p.weights, "means": p.means,
                    "precisions": self.family.precision_from_cholesky(prec_chol)}
            program = poutine.condition(program, data=data)
        elif self.prior == "flat":
            raise ValueError(
                "A flat prior is improper and cannot be sampled from; pass params={'weights': "
                "..., 'means': ..., 'covariances': ...} to sample from a given mixture."
            )
        with seeded(seed), quiet_singular_samples():
            trace = poutine.trace(program).get_trace(None, n=n, n_features=n_features)
        return (trace.nodes["obs"]["value"].detach().cpu().numpy(),
                trace.nodes["z"]["value"].detach().cpu().numpy())
