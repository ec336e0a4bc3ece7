"""What scikit-learn's two Gaussian mixtures share: options, initialisation, predictions, sampling.

As in scikit-learn's ``BaseMixture``, a fit starts from initial responsibilities (N, K) drawn by
``init_params`` and keeps the best of ``n_init`` starts; the engines differ (maximum-likelihood
EM for :class:`~probmix.sklearn.GaussianMixture`, closed-form variational inference for
:class:`~probmix.sklearn.BayesianGaussianMixture`). Predictions read the subclass's
``_log_joint(x)`` (N, K): log π_k + log N(x_n | k), or its variational expectation.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch

from probmix._random import generator
from probmix._validation import check_float, check_int
from probmix.model.covariance import get_family
from probmix.exceptions import ConvergenceWarning as _ProbmixConvergenceWarning
from probmix.baselines.kmeans import kmeans_plusplus, lloyd
from probmix.sklearn._base import (ConvergenceWarning, EstimatorBase, NotFittedError,
                                   seed_from_random_state)
from probmix.sklearn._input import validate_data

__all__ = ["MixtureBase", "initial_responsibilities", "INIT_PARAMS"]

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def initial_responsibilities(x: torch.Tensor, k: int, init_params: str, *, n_init: int,
                             seed: int) -> torch.Tensor:
    """scikit-learn's initial responsibilities for ``n_init`` starts, shape (R, N, K).

    - "kmeans": one-hot labels of k-means (k-means++ seeds, then Lloyd), one run per start;
    - "k-means++": one-hot at the K rows chosen by k-means++ only (the other rows are 0);
    - "random": uniform random rows, normalised;
    - "random_from_data": one-hot at K distinct random rows.
    """
    n = x.shape[0]
    gen = generator(seed, x.device)
    opts = dict(dtype=x.dtype, device=x.device)
    resp = torch.zeros(n_init, n, k, **opts)  # (R, N, K)
    if init_params in ("kmeans", "k-means++"):
        centers = kmeans_plusplus(x, k, n_init=n_init, generator=gen)  # (R, K, D): rows of x
        if init_params == "kmeans":
            labels = lloyd(x, centers)[0]  # (R, N)
            return torch.nn.functional.one_hot(labels, k).to(**opts)
        rows = torch.cdist(centers, x[None]).argmin(-1)  # (R, K): the chosen rows
    elif init_params == "random":
        resp = torch.rand(n_init, n, k, generator=gen, **opts)
        return resp / resp.sum(-1, keepdim=True)
    else:
        rows = torch.multinomial(torch.ones(n_init, n, **opts), k, replacement=False,
                                 generator=gen)  # (R, K)
    cols = torch.arange(k, device=x.device).expand_as(rows)
    resp[torch.arange(n_init, device=x.device)[:, None], rows, cols] = 1.0
    return resp

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")  # scikit-learn's names


class MixtureBase(EstimatorBase):
    """Shared options, checks and methods; subclasses implement ``_fit`` and ``_log_joint``."""

    # --- options -------------------------------------------------------------------------------
    def _check_common_params(self) -> None:
        """Validate the options both estimators share (at fit time, as scikit-learn does)."""
        check_int(self.n_components, "n_components", minimum=1)
        check_float(self.tol, "tol", minimum=0.0)
        check_float(self.reg_covar, "reg_covar", minimum=0.0)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_int(self.n_init, "n_init", minimum=1)
        check_int(self.verbose, "verbose", minimum=0)
        check_int(self.verbose_interval, "verbose_interval", minimum=1)
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {sorted(COVARIANCE_TYPES)}; got "
                             f"{self.covariance_type!r}.")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params must be one of {INIT_PARAMS}; got "
                             f"{self.init_params!r}.")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise TypeError(f"warm_start must be a bool; got {self.warm_start!r}.")

    @property
    def _family(self):
        return get_family(self.covariance_type)

    # --- fitting ---------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit the mixture to ``X`` (``y`` is ignored). Returns self.

        Parameters
        ----------
        X : array-like (N, D), DataFrame or tensor
        y : ignored
        """
        self.fit_predict(X, y)
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, then return the component of each row of ``X``, shape (N,)."""
        self._check_common_params()
        self._check_params()
        x = validate_data(self, X, reset=True, min_samples=self.n_components)
        warm = self.warm_start and hasattr(self, "converged_")
        seed = seed_from_random_state(self.random_state)
        with warnings.catch_warnings():  # one warning below, for the kept start only
            warnings.simplefilter("ignore", _ProbmixConvergenceWarning)
            self._fit(x, seed=seed, warm=warm)
        if not self.converged_:
            warnings.warn(
                f"Best performing initialization did not converge in max_iter={self.max_iter} "
                f"iterations ({type(self).__name__}). Try different init parameters, increase "
                "max_iter, raise tol, or check for degenerate data.",
                ConvergenceWarning, stacklevel=3)
        return self._log_joint(x).argmax(-1).cpu().numpy()

    def _start(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """Initial responsibilities (n_init, N, K) from ``init_params``."""
        return initial_responsibilities(x, self.n_components, self.init_params,
                                        n_init=self.n_init, seed=seed)

    # --- predictions -------------------------------------------------------------------------------
    def _fitted_input(self, X) -> torch.Tensor:
        if not hasattr(self, "converged_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 "'fit' with appropriate arguments before using this estimator.")
        return validate_data(self, X, reset=False)

    def predict(self, X) -> np.ndarray:
        """The most probable component of each row, shape (N,)."""
        return self._log_joint(self._fitted_input(X)).argmax(-1).cpu().numpy()

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities of the components for each row, shape (N, K); rows sum to 1."""
        return torch.softmax(self._log_joint(self._fitted_input(X)), -1).cpu().numpy()

    def score_samples(self, X) -> np.ndarray:
        """log-density of each row with the component summed out, shape (N,)."""
        return torch.logsumexp(self._log_joint(self._fitted_input(X)), -1).cpu().numpy()

    def score(self, X, y=None) -> float:
        """Mean of :meth:`score_samples` over the rows of ``X`` (``y`` is ignored)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1):
        """Draw from the fitted mixture, as scikit-learn: rows grouped by component.

        Uses ``weights_``, ``means_`` and ``covariances_``; the seed comes from
        ``random_state`` (an int gives the same draws at every call).

        Returns
        -------
        X : ndarray (n_samples, D)
        y : ndarray (n_samples,) int
            The component of each row, sorted.
        """
        if not hasattr(self, "converged_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 "'fit' before 'sample'.")
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) \
                or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples!r}. The sampling "
                             "requires at least one sample.")
        rng = np.random.default_rng(seed_from_random_state(self.random_state))
        k, d = self.means_.shape
        counts = rng.multinomial(n_samples, np.asarray(self.weights_, dtype=np.float64))
        y = np.repeat(np.arange(k), counts)  # (n,)
        full = self._family.to_full(torch.as_tensor(np.asarray(self.covariances_)), k, d).numpy()
        chol = np.linalg.cholesky(full)  # (K, D, D)
        eps = rng.standard_normal((n_samples, d))  # (n, D)
        x = self.means_[y] + np.einsum("nij,nj->ni", chol[y], eps)  # (n, D)
        return x, y

    def _set_covariance_attributes(self, covariances: torch.Tensor) -> None:
        """``covariances_``, ``precisions_cholesky_`` and ``precisions_`` in the native shapes."""
        family = self._family
        prec_chol = family.precision_cholesky(covariances)[0]
        self.covariances_ = covariances.cpu().numpy()
        self.precisions_cholesky_ = prec_chol.cpu().numpy()
        self.precisions_ = family.precision_from_cholesky(prec_chol).cpu().numpy()

    def __sklearn_tags__(self):  # called by scikit-learn only, i.e. on its BaseEstimator
        tags = super().__sklearn_tags__()
        tags.estimator_type = "density_estimator"
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "converged_")
