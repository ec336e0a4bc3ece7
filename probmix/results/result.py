"""``Fit``: the one result type every engine returns."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from probmix._versions import runtime_versions
from probmix.io import persistence
from probmix.io.data import as_data, check_n_features
from probmix.io.feature_names import check_feature_names
from probmix.model.covariance import get_family
from probmix.model.interface import MixtureModel, as_model
from probmix.results import diagnostics
from probmix.results.fit_checks import check_loaded_fit

__all__ = ["Fit"]


@persistence.register("Fit")
@dataclass(frozen=True, eq=False, kw_only=True)
class Fit:
    """A fitted mixture: point estimates, draws (SVI/MCMC) and predictions.

    Attributes
    ----------
    engine : {"map", "svi", "mcmc"}
    model : GaussianMixture or callable
        The declared model (a :class:`probmix.GaussianMixture` or a Pyro program).
    params : dict of str to ndarray
        Point estimate of each global site: the mode for "map", the posterior mean otherwise
        (a GaussianMixture's covariances from draws: the inverse of the posterior mean
        precision, which always exists).
        For a GaussianMixture: ``weights`` (K,), ``means`` (K, D) and ``covariances`` in the
        covariance family's native shape.
    n_features : int
        D, the number of columns seen at fit time.
    draws : dict of str to ndarray
        Posterior draws shaped (chain, draw, ...); empty for "map".
    converged : bool or None
        Whether an optimiser met its tolerance (EM, gradient MAP, SVI, CAVI). None where there
        is no tolerance to meet: the samplers (Gibbs, NUTS), which report r_hat, ESS and
        divergences instead (:meth:`summary`, ``sample_stats``,
        :func:`~probmix.results.diagnostics.check_convergence`), and single-pass online EM.
    n_iter : int
    lower_bounds : ndarray (n_iter,)
        History of the engine's objective per unit weight (EM: log-likelihood + log-prior,
        divided by the total weight, before each M-step).
    options : dict
        The options the engine ran with.
    device, dtype : str
        Where predictions are computed.
    center : ndarray (D,), scale : float
        The standardisation used in fitting (predictions reuse it for accuracy).
    losses : ndarray (n_steps,)
        SVI: the loss (negative ELBO) after each step; empty for other engines.
    sample_stats : dict of str to ndarray
        Per-draw sampler statistics shaped (chain, draw), e.g. NUTS divergences and step sizes.
    data : ndarray (N, D) or None
        The observed data (SVI/MCMC keep it for :meth:`to_arviz`'s observed_data and
        log_likelihood groups).
    assignment_draws : ndarray (chain, draw, N) or None
        Sampled assignments z (Gibbs), when the engine produced them.
    versions : dict of str to str
        The probmix, torch, pyro, numpy and python versions that made the fit (the seed is
        in ``options["seed"]``).
    feature_names : list of str or None
        The column names seen at fit time (a DataFrame's columns, a CSV header); a DataFrame
        passed to :meth:`predict` and the other methods must have them, in this order.
    """

    engine: str
    model: Any
    params: dict
    n_features: int
    draws: dict = field(default_factory=dict)
    converged: bool | None = True
    n_iter: int = 0
    lower_bounds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    options: dict = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float64"
    center: np.ndarray | None = None
    scale: float = 1.0
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sample_stats: dict = field(default_factory=dict)
    data: np.ndarray | None = None
    assignment_draws: np.ndarray | None = None
    versions: dict = field(default_factory=runtime_versions)
    feature_names: list | None = None

    def __post_init__(self):
        # Plain Python scalars whatever an engine computed them with (a numpy.bool_ from a
        # comparison, a numpy integer from a count): every field type an engine can produce
        # is then one that save/load round-trips.
        for name, kind in (("converged", bool), ("n_iter", int), ("n_features", int),
                           ("scale", float)):
            value = getattr(self, name)
            if isinstance(value, (np.generic, torch.Tensor)):
                object.__setattr__(self, name, kind(value.item()))

    # --- the model behind the mixture interface ----------------------------------------------
    @property
    def mixture(self) -> MixtureModel:
        """The model as a :class:`~probmix.model.interface.MixtureModel` (a program wrapped)."""
        return as_model(self.model)

    # --- parameters of a Gaussian mixture -------------------------------------------------------
    def _gaussian(self) -> MixtureModel:
        mixture = self.mixture
        if not mixture.gaussian:
            raise AttributeError(
                "weights/means/covariances exist for a probmix.GaussianMixture; this fit is of "
                "a custom program: use fit.params."
            )
        return mixture

    @property
    def n_components(self) -> int:
        """K."""
        return int(np.asarray(self.params["weights"]).shape[-1])

    @property
    def weights(self) -> np.ndarray:
        """Mixture weights, shape (K,)."""
        return self.params["weights"]

    @property
    def means(self) -> np.ndarray:
        """Component means, shape (K, D)."""
        self._gaussian()
        return self.params["means"]

    @property
    def covariances(self) -> np.ndarray:
        """Component covariances as full matrices, shape (K, D, D), for every family."""
        return self._gaussian().full_covariances(self.params["covariances"], self.n_components,
                                                 self.n_features)

    @property
    def covariance_draws(self) -> np.ndarray:
        """Posterior draws of the covariances as full matrices, shape (C, S, K, D, D)."""
        cov = np.asarray(self.draws["covariances"])
        full = self._gaussian().full_covariances(cov.reshape(-1, *cov.shape[2:]),
                                                 self.n_components, self.n_features)
        return full.reshape(*cov.shape[:2], *full.shape[1:])

    @property
    def precisions_cholesky(self) -> np.ndarray:
        """Upper Cholesky factors U of the precisions (precision = U Uᵀ), shape (K, D, D)."""
        cov = torch.as_tensor(self.covariances)
        return get_family("full").precision_cholesky(cov)[0].numpy()

    @property
    def n_parameters(self) -> int:
        """Number of free parameters of the model."""
        if "n_parameters" in self.options:  # recorded at fit time (MAP fits of programs)
            return int(self.options["n_parameters"])
        data = None if self.data is None else torch.as_tensor(self.data)
        return self.mixture.n_parameters(self.n_features, x=data)

    # --- predictions -----------------------------------------------------------------------------
    def _x(self, x) -> torch.Tensor:
        check_feature_names(self.feature_names, x)
        x = as_data(x, device=self.device, dtype=getattr(torch, self.dtype))
        check_n_features(x, self.n_features)
        return x

    def _log_joint_batch(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """log π_k + log p(x_n | component k) for parameter sets (B, ...), shape (B, N, K)."""
        return self.mixture.log_joint(params, x, shift=self.center, scale=self.scale)

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log π_k + log p(x_n | component k) at the point estimate, shape (N, K)."""
        return self._log_joint_batch(x, {n: np.asarray(v)[None] for n, v in self.params.items()})[0]

    @property
    def n_draws(self) -> int:
        """Number of posterior draws (chains × draws); 0 for a point estimate."""
        if not self.draws:
            return 0
        first = next(iter(self.draws.values()))
        return int(first.shape[0] * first.shape[1])

    def log_joint_draws(self, x, *, batch_elements: int = 2**23):
        """log π_k + log p(x_n | k) under each posterior draw, in batches of draws.

        Parameters
        ----------
        x : array-like (N, D)
        batch_elements : int
            Bound on B · N · K per batch (memory).

        Yields
        ------
        Tensor (B, N, K)
            For consecutive draws in (chain, draw) order, flattened.
        """
        x = self._x(x)
        if not self.draws:
            yield self._log_joint(x)[None]
            return
        flat = {name: np.asarray(v).reshape(-1, *np.shape(v)[2:]) for name, v in self.draws.items()}
        sites = self.options.get("sites", list(flat))
        fixed = {n: np.asarray(self.params[n]) for n in self.options.get("constants", ())}
        total = self.n_draws
        k = self.n_components if "weights" in flat else 1
        step = max(1, batch_elements // max(1, x.shape[0] * k))
        for start in range(0, total, step):
            sl = slice(start, min(start + step, total))
            batch = {n: flat[n][sl] for n in sites}
            b = sl.stop - sl.start
            batch.update({n: np.broadcast_to(v, (b, *v.shape)) for n, v in fixed.items()})
            yield self._log_joint_batch(x, batch)

    def predict_proba(self, x) -> np.ndarray:
        """Posterior probability of each component for each row, shape (N, K); rows sum to 1.

        For SVI/MCMC fits, p(z_n = k | x_n, θ) averaged over the posterior draws of θ.
        """
        total, count = None, 0
        for logp in self.log_joint_draws(x):
            part = torch.softmax(logp, dim=-1).sum(0)
            total = part if total is None else total + part
            count += logp.shape[0]
        proba = total / count
        bad = ~torch.isfinite(proba).all(-1)
        if bool(bad.any()):
            rows = torch.nonzero(bad).reshape(-1)
            raise ValueError(
                f"{len(rows)} row(s) of x (first: row {int(rows[0])}) cannot be assigned: their "
                f"density under every component is not a finite number in {self.dtype} (values "
                "far beyond the fitted data, e.g. |x| above 1e150, whose squares overflow). "
                "Check those rows, or rescale x and refit.")
        return proba.cpu().numpy()

    def predict(self, x) -> np.ndarray:
        """Most probable component of each row, shape (N,)."""
        return self.predict_proba(x).argmax(-1)

    def pointwise_log_likelihood(self, x) -> np.ndarray:
        """log p(x_n | θ_s) for every draw and row, shape (chain, draw, N); (1, 1, N) for MAP."""
        parts = [torch.logsumexp(logp, dim=-1) for logp in self.log_joint_draws(x)]
        out = torch.cat(parts, 0).cpu().numpy()
        if not self.draws:
            return out[None]
        c, s = next(iter(self.draws.values())).shape[:2]
        return out.reshape(c, s, -1)

    def score_samples(self, x) -> np.ndarray:
        """log p(x_n) of each row with the assignment summed out, shape (N,).

        For SVI/MCMC fits, the posterior predictive density log (1/S) Σ_s p(x_n | θ_s).
        """
        ll = self.pointwise_log_likelihood(x)
        ll = ll.reshape(-1, ll.shape[-1])
        return (torch.logsumexp(torch.as_tensor(ll), 0) - math.log(ll.shape[0])).numpy()

    def score(self, x) -> float:
        """Mean log-density of the rows of ``x``."""
        return float(np.mean(self.score_samples(x)))

    def bic(self, x) -> float:
        """Bayesian information criterion -2 log L + p log N (lower is better)."""
        n = self._x(x).shape[0]
        return -2.0 * self.score(x) * n + self.n_parameters * math.log(n)

    def aic(self, x) -> float:
        """Akaike information criterion -2 log L + 2 p (lower is better)."""
        n = self._x(x).shape[0]
        return -2.0 * self.score(x) * n + 2.0 * self.n_parameters

    def sample(self, n: int = 1, *, seed: int | None = 0):
        """Draw n points from the fitted mixture, as scikit-learn's ``GaussianMixture.sample``.

        A "map" fit draws from the mixture at its mode; a fit with posterior draws (SVI,
        MCMC) from the posterior predictive that :meth:`score_samples` evaluates: each
        point takes a random posterior draw of the parameters, then a component, then x.

        Parameters
        ----------
        n : int
        seed : int or None

        Returns
        -------
        x : ndarray (n, D)
        labels : ndarray (n,) int
            The component of each point, in increasing order.
        """
        from probmix.results.sampling import sample_fit

        self._gaussian()
        return sample_fit(self, n, seed=seed)

    def sample_posterior_predictive(self, n: int | None = None, *, seed: int | None = 0):
        """``n`` new points (default N) per posterior draw, shape (chain, draw, n, D).

        See :func:`probmix.results.predictive.sample_posterior_predictive`.
        """
        from probmix.results.predictive import sample_posterior_predictive

        return sample_posterior_predictive(self, n, seed=seed)

    # --- ArviZ ---------------------------------------------------------------------------------
    def to_arviz(self, *, log_likelihood: bool = True, posterior_predictive: bool = False,
                 seed: int | None = 0):
        """The draws as an ArviZ DataTree (see :func:`probmix.results.diagnostics.to_arviz`);
        ``posterior_predictive=True`` adds that group (N points per draw, drawn with ``seed``)."""
        return diagnostics.to_arviz(self, log_likelihood=log_likelihood,
                                    posterior_predictive=posterior_predictive, seed=seed)

    def summary(self, *, var_names=None, ci_prob: float = 0.94, round_to: int | None = 2):
        """ArviZ summary table: mean, sd, HDI, MCSE, ESS and r_hat per parameter (pandas)."""
        return diagnostics.summary(self, var_names=var_names, ci_prob=ci_prob, round_to=round_to)

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the fit to ``path`` (an ``.npz`` of arrays and a JSON header; no pickle).

        Everything round-trips exactly through :func:`probmix.load`; a custom program is
        stored by name only (pass it back with ``probmix.load(path, model=program)``). The
        file is replaced atomically. See :mod:`probmix.io.persistence` for the format.
        """
        persistence.save(self, path)

    def _probmix_state(self) -> persistence.State:
        """Every field as saved; the model declared beside them (see :mod:`probmix.io.persistence`)."""
        return persistence.State({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                  if f.name != "model"},
                                 lenient=("options",), models={"model": self.model})

    @classmethod
    def _from_probmix_state(cls, fields: dict, context) -> "Fit":
        known = {f.name for f in dataclasses.fields(cls)} - {"model"}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise persistence.SavedFileError(f"Damaged probmix file: unknown Fit fields {unknown} "
                                             "(written by a newer probmix?).")
        for name, value in fields.items():
            if not _FIELD_CHECKS.get(name, lambda v: True)(value):
                raise persistence.SavedFileError(f"Damaged probmix file: Fit field {name!r}.")
        if "device" in fields:
            fields["device"] = str(context.device(fields["device"]))
        fit = cls(model=context.models["model"], **fields)
        check_loaded_fit(fit)
        return fit

    # --- display ---------------------------------------------------------------------------------
    def parameter_table(self, *, max_columns: int = 8) -> str:
        """A plain-text table: weights and means per component, each covariance's column sds
        and strongest correlations, by column name
        (:func:`probmix.results.table.component_table`)."""
        from probmix.results.table import component_table

        head = f"engine={self.engine}  converged={self.converged}  n_iter={self.n_iter}"
        return head + "\n" + component_table(self, max_columns=max_columns)

    def __repr__(self) -> str:
        return (f"Fit(engine={self.engine!r}, model={self.model!r}, n_features={self.n_features}, "
                f"converged={self.converged}, n_iter={self.n_iter})")


def _arrays(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(a, np.ndarray)
                                       for k, a in v.items())


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_FIELD_CHECKS = {  # what a loaded field must be (the file is not trusted)
    "engine": lambda v: v in ("map", "svi", "mcmc"),
    "params": _arrays, "draws": _arrays, "sample_stats": _arrays,
    "n_features": lambda v: _count(v) and v >= 1,
    "converged": lambda v: v is None or isinstance(v, bool),  # None: a sampler
    "n_iter": _count,
    "lower_bounds": lambda v: isinstance(v, np.ndarray),
    "losses": lambda v: isinstance(v, np.ndarray),
    "options": lambda v: isinstance(v, dict),
    "device": lambda v: isinstance(v, str),
    "dtype": lambda v: v in ("float32", "float64"),
    "center": lambda v: v is None or isinstance(v, np.ndarray),
    "data": lambda v: v is None or isinstance(v, np.ndarray),
    "assignment_draws": lambda v: v is None or isinstance(v, np.ndarray),
    "scale": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    and math.isfinite(v) and v > 0,
    "versions": lambda v: isinstance(v, dict),
    "feature_names": lambda v: v is None or (isinstance(v, list)
                                             and all(isinstance(n, str) for n in v)),
}
