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


import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.ops.indexing import Vindex

from probmix._random import quiet_singular_samples, seeded
from probmix._validation import check_int
from probmix.model.covariance import CovarianceFamily, get_family
from probmix.model.weights import stick_breaking  # re-exported: its home before weights.py
from probmix.io.data import check_squares_finite
from probmix.model.priors import Prior, ResolvedPrior, resolve_prior

__all__ = ["GaussianMixture", "MixtureParams", "as_params", "stick_breaking", "WEIGHTS_PRIORS"]

WEIGHTS_PRIORS = ("dirichlet", "dirichlet_process")


class MixtureParams:
    """Parameters of a Gaussian mixture as tensors, covariances in the family's native shape.

    Attributes
    ----------
    weights : Tensor (..., K)
    means : Tensor (..., K, D)
    covariances : Tensor, native shape (see :mod:`probmix.model.covariance`)
    """

    __slots__ = ("weights", "means", "covariances")

    def __init__(self, weights, means, covariances):
        self.weights, self.means, self.covariances = weights, means, covariances


def _as_tensor(value, name, *, dtype, device):
    try:
        t = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(
            np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"params[{name!r}] must be a numeric array; got {type(value).__name__}.") from None
    t = t.to(dtype=dtype, device=device)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"params[{name!r}] contains NaN or infinite values.")
    return t


def as_params(params, family: CovarianceFamily, *, n_components: int, n_features: int | None,
              dtype=torch.float64, device="cpu") -> MixtureParams:
    """Validate user-given mixture parameters.

    Parameters
    ----------
    params : dict or MixtureParams
        ``weights`` (K,), ``means`` (K, D), ``covariances`` as full matrices (K, D, D) or in
        the family's native shape; or ``precisions`` instead of ``covariances``. A leading
        batch dimension (R, ...) gives R sets of parameters (e.g. R EM restarts).
    family : CovarianceFamily
    n_components : int
    n_features : int or None
        Expected D; None takes it from ``means``.

    Raises
    ------
    ValueError
        Wrong shapes, weights not on the simplex, or a covariance that is not symmetric
        positive definite (naming the component and its eigenvalues).
    """
    if isinstance(params, MixtureParams):
        return params
    if not isinstance(params, dict):
        raise TypeError(
            "params must be a dict with 'weights', 'means' and 'covariances' (or 'precisions'); "
            f"got {type(params).__name__}."
        )
    missing = [k for k in ("weights", "means") if k not in params]
    if missing or not ({"covariances", "precisions"} & params.keys()):
        raise ValueError(
            "params must have 'weights', 'means' and 'covariances' (or 'precisions'); got keys "
            f"{sorted(params)}."
        )
    opts = dict(dtype=dtype, device=device)
    weights = _as_tensor(params["weights"], "weights", **opts)
    means = _as_tensor(params["means"], "means", **opts)
    K = n_components
    D = means.shape[-1] if n_features is None else n_features
    if means.ndim < 2 or means.shape[-2:] != (K, D):
        raise ValueError(
            f"params['means'] must have shape ({K}, {D}) for {K} components in {D} dimensions; "
            f"got {tuple(means.shape)}."
        )
    batch = means.shape[:-2]
    if weights.shape != (*batch, K):
        raise ValueError(f"params['weights'] must have shape {(*batch, K)}; got {tuple(weights.shape)}.")
    if bool((weights < 0).any()) or not bool(
            torch.allclose(weights.sum(-1), torch.ones((), **opts), atol=1e-6)):
        raise ValueError("params['weights'] must be non-negative and sum to 1 (per parameter set).")
    key = "covariances" if "covariances" in params else "precisions"
    mats = _as_tensor(params[key], key, **opts)
    native = (*batch, *family.cov_shape(K, D))
    if mats.shape == (*batch, K, D, D) and mats.shape != native:
        _check_symmetric_pd(mats, key)
        mats = family.from_full(mats)
    elif mats.shape != native:
        raise ValueError(
            f"params[{key!r}] must have shape {native} (covariance={family.name!r}) or "
            f"{(*batch, K, D, D)}; got {tuple(mats.shape)}."
        )
    if family.precision_event_dims == 2:  # matrices: full and tied
        _check_symmetric_pd(mats, key)
    elif bool((mats <= 0).any()):
        raise ValueError(f"params[{key!r}] must be positive (they are variances); got {mats.min():g}.")
    cov = mats if key == "covariances" else family.covariance_from_precision(mats)
    return MixtureParams(weights, means, cov)


def _check_symmetric_pd(mats: torch.Tensor, key: str) -> None:
    if not bool(torch.allclose(mats, mats.transpose(-1, -2))):
        raise ValueError(f"params[{key!r}] must be symmetric matrices.")
    eig = torch.linalg.eigvalsh(mats)
    bad = (eig <= 0).any(-1)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        vals = ", ".join(f"{v:.3g}" for v in eig[idx].tolist())
        raise ValueError(
            f"params[{key!r}][{', '.join(map(str, idx))}] is not positive definite (eigenvalues "
            f"{vals}); a covariance must be symmetric with positive eigenvalues, so every "
            "off-diagonal term needs |c_ij| < sqrt(c_ii * c_jj). Fix that matrix."
        )


class GaussianMixture:
    """A Gaussian mixture with a conjugate prior, declared as a Pyro program.

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
                             stick_breaking=self.is_dirichlet_process, moments=moments)

    def n_parameters(self, n_features: int) -> int:
        """Number of free parameters (weights, means, covariances) in D = n_features dimensions."""
        return self.family.n_parameters(self.n_components, n_features)

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
