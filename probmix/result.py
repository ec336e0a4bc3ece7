"""``Fit``: the one result type every engine returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from probmix.data import as_data, check_n_features

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
    converged : bool
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
    """

    engine: str
    model: Any
    params: dict
    n_features: int
    draws: dict = field(default_factory=dict)
    converged: bool = True
    n_iter: int = 0
    lower_bounds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    options: dict = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float64"
    center: np.ndarray | None = None
    scale: float = 1.0

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
        from probmix.covariance import get_family

        return get_family("full").precision_cholesky(torch.as_tensor(self.covariances))[0].numpy()

    @property
    def n_parameters(self) -> int:
        """Number of free parameters of the model."""
        if hasattr(self.model, "n_parameters"):
            return self.model.n_parameters(self.n_features)
        return int(self.options["n_parameters"])

    # --- predictions -----------------------------------------------------------------------------
    def _x(self, x) -> torch.Tensor:
        x = as_data(x, device=self.device, dtype=getattr(torch, self.dtype))
        check_n_features(x, self.n_features)
        return x

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log π_k + log p(x_n | component k) for each row and component, shape (N, K)."""
        if hasattr(self.model, "family"):
            from probmix.engines import em_steps

            family = self.model.family
            opts = dict(dtype=x.dtype, device=x.device)
            center = torch.as_tensor(self.center, **opts)
            data = em_steps.PreparedData(x, family, shift=center, scale=self.scale, cache_bytes=0)
            means = (torch.as_tensor(self.params["means"], **opts) - center) / self.scale
            cov = torch.as_tensor(self.params["covariances"], **opts) / self.scale**2
            prec_chol, _ = family.precision_cholesky(cov)
            w = em_steps.natural_weights(family, torch.as_tensor(self.params["weights"], **opts)[None],
                                         means[None], prec_chol[None])[0]
            return em_steps.log_joint(data, w) - data.d * math.log(self.scale)
        from probmix.program import enumerated_log_joint

        return enumerated_log_joint(self.model, self.params, x)

    def predict_proba(self, x) -> np.ndarray:
        """Posterior probability of each component for each row, shape (N, K); rows sum to 1."""
        return torch.softmax(self._log_joint(self._x(x)), dim=-1).cpu().numpy()

    def predict(self, x) -> np.ndarray:
        """Most probable component of each row, shape (N,)."""
        return self._log_joint(self._x(x)).argmax(-1).cpu().numpy()

    def score_samples(self, x) -> np.ndarray:
        """log p(x_n) of each row with the assignment summed out, shape (N,)."""
        return torch.logsumexp(self._log_joint(self._x(x)), dim=-1).cpu().numpy()

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
