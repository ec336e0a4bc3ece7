"""``Fit``: the one result type every engine returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from probmix._versions import runtime_versions
from probmix.io.data import as_data, check_n_features

__all__ = ["Fit"]


@dataclass(frozen=True, eq=False, kw_only=True)
class Fit:
    """A fitted mixture: point estimates, draws (SVI/MCMC) and predictions.

    Attributes
    ----------
    engine : {"map", "svi", "mcmc"}
    model : GaussianMixture or callable
        The declared model (a :class:`probmix.GaussianMixture` or a Pyro program).
    params : dict of str to ndarray
        Point estimate of each global site: the mode for "map", the posterior mean otherwise.
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

    # --- parameters of a Gaussian mixture -------------------------------------------------------
    @property
    def _family(self):
        family = getattr(self.model, "family", None)
        if family is None:
            raise AttributeError(
                "weights/means/covariances exist for a probmix.GaussianMixture; this fit is of "
                "a custom program: use fit.params."
            )
        return family

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
        self._family
        return self.params["means"]

    @property
    def covariances(self) -> np.ndarray:
        """Component covariances as full matrices, shape (K, D, D), for every family."""
        family = self._family
        cov = torch.as_tensor(self.params["covariances"])
        return family.to_full(cov, self.n_components, self.n_features).numpy().copy()

    @property
    def precisions_cholesky(self) -> np.ndarray:
        """Upper Cholesky factors U of the precisions (precision = U Uᵀ), shape (K, D, D)."""
        from probmix.model.covariance import get_family

        return get_family("full").precision_cholesky(torch.as_tensor(self.covariances))[0].numpy()

    @property
    def n_parameters(self) -> int:
        """Number of free parameters of the model."""
        if hasattr(self.model, "n_parameters"):
            return self.model.n_parameters(self.n_features)
        if "n_parameters" not in self.options and self.data is not None:  # SVI/MCMC fits
            from probmix.model.program import count_parameters

            return count_parameters(self.model, torch.as_tensor(self.data))
        return int(self.options["n_parameters"])

    # --- predictions -----------------------------------------------------------------------------
    def _x(self, x) -> torch.Tensor:
        x = as_data(x, device=self.device, dtype=getattr(torch, self.dtype))
        check_n_features(x, self.n_features)
        return x

    def _gmm_log_joint(self, x: torch.Tensor, weights, means, cov) -> torch.Tensor:
        """log π_k + log N(x_n | k) for B parameter sets (leading dim), shape (B, N, K)."""
        from probmix.infer.map import em_steps

        family = self.model.family
        opts = dict(dtype=x.dtype, device=x.device)
        center = torch.as_tensor(self.center, **opts)
        data = em_steps.PreparedData(x, family, shift=center, scale=self.scale, cache_bytes=0)
        means = (torch.as_tensor(means, **opts) - center) / self.scale
        cov = torch.as_tensor(cov, **opts) / self.scale**2
        prec_chol, _ = family.precision_cholesky(cov)
        w = em_steps.natural_weights(family, torch.as_tensor(weights, **opts), means, prec_chol)
        b, k, f = w.shape
        out = [(w.reshape(b * k, f) @ phi).view(b, k, -1) for _, phi, _ in data.chunks()]
        return torch.cat(out, -1).transpose(1, 2) - data.d * math.log(self.scale)

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log π_k + log p(x_n | component k) at the point estimate, shape (N, K)."""
        if hasattr(self.model, "family"):
            p = self.params
            return self._gmm_log_joint(x, np.asarray(p["weights"])[None], np.asarray(p["means"])[None],
                                       np.asarray(p["covariances"])[None])[0]
        from probmix.model.program import enumerated_log_joint

        return enumerated_log_joint(self.model, self.params, x)

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
        total = self.n_draws
        k = self.n_components if "weights" in flat else 1
        step = max(1, batch_elements // max(1, x.shape[0] * k))
        for start in range(0, total, step):
            sl = slice(start, min(start + step, total))
            if hasattr(self.model, "family"):
                yield self._gmm_log_joint(x, flat["weights"][sl], flat["means"][sl],
                                          flat["covariances"][sl])
            else:
                from probmix.model.program import enumerated_log_joint

                sites = self.options.get("sites", list(flat))
                fixed = {n: self.params[n] for n in self.options.get("constants", ())}
                yield torch.stack([enumerated_log_joint(
                    self.model, {**fixed, **{n: flat[n][i] for n in sites}}, x)
                    for i in range(sl.start, sl.stop)])

    def predict_proba(self, x) -> np.ndarray:
        """Posterior probability of each component for each row, shape (N, K); rows sum to 1.

        For SVI/MCMC fits, p(z_n = k | x_n, θ) averaged over the posterior draws of θ.
        """
        total, count = None, 0
        for logp in self.log_joint_draws(x):
            part = torch.softmax(logp, dim=-1).sum(0)
            total = part if total is None else total + part
            count += logp.shape[0]
        return (total / count).cpu().numpy()

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

    # --- ArviZ ---------------------------------------------------------------------------------
    def to_arviz(self, *, log_likelihood: bool = True):
        """The draws as an ArviZ DataTree (see :func:`probmix.results.diagnostics.to_arviz`)."""
        from probmix.results.diagnostics import to_arviz

        return to_arviz(self, log_likelihood=log_likelihood)

    def summary(self, *, var_names=None, ci_prob: float = 0.94, round_to: int | None = 2):
        """ArviZ summary table: mean, sd, HDI, MCSE, ESS and r_hat per parameter (pandas)."""
        from probmix.results.diagnostics import summary

        return summary(self, var_names=var_names, ci_prob=ci_prob, round_to=round_to)

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the fit to ``path`` (an ``.npz`` of arrays and a JSON header; no pickle).

        Everything round-trips exactly through :func:`probmix.load`; a custom program is
        stored by name only (pass it back with ``probmix.load(path, model=program)``). The
        file is replaced atomically. See :mod:`probmix.io.persistence` for the format.
        """
        from probmix.io.persistence import save_fit

        save_fit(self, path)

    # --- display ---------------------------------------------------------------------------------
    def parameter_table(self, *, precision: int = 3) -> str:
        """A plain-text table: one row per component with weight, mean and covariance."""
        lines = [f"engine={self.engine}  converged={self.converged}  n_iter={self.n_iter}"]
        header = f"{'k':>3}  {'weight':>8}  {'mean':<28}  covariance (row-major)"
        lines.append(header)
        cov = self.covariances
        for k in range(self.n_components):
            mean = np.array2string(np.asarray(self.means[k]), precision=precision,
                                   suppress_small=True, separator=", ")
            c = np.array2string(cov[k].reshape(-1), precision=precision, suppress_small=True,
                                separator=", ")
            lines.append(f"{k:>3}  {float(self.weights[k]):>8.{precision}f}  {mean:<28}  {c}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Fit(engine={self.engine!r}, model={self.model!r}, n_features={self.n_features}, "
                f"converged={self.converged}, n_iter={self.n_iter})")
