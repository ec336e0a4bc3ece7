"""``probmix.sklearn.GaussianMixture``: scikit-learn's maximum-likelihood mixture, on probmix EM.

The fit is ``probmix.fit(probmix.GaussianMixture(K, covariance=covariance_type, prior="flat"),
X, engine="map")``: closed-form EM (:func:`probmix.infer.map.em.fit_em`) with every start of
``n_init`` advanced together as one batched computation.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from probmix.infer.map import em_steps
from probmix.infer.dispatch import fit as probmix_fit
from probmix.model.gaussian_mixture import GaussianMixture as _Model
from probmix.sklearn._mixture import MixtureBase

__all__ = ["GaussianMixture"]


class GaussianMixture(MixtureBase):
    """Gaussian mixture by maximum likelihood (EM), with scikit-learn's API.

    A script written for ``sklearn.mixture.GaussianMixture`` runs unchanged with
    ``from probmix.sklearn import GaussianMixture``; ``device`` and ``dtype`` are added.

    Parameters
    ----------
    n_components : int, default 1
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    tol : float, default 1e-3
        Stop when the mean log-likelihood per sample changes by less than ``tol``.
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance estimate.
    max_iter : int, default 100
        EM iterations per start (at least 1).
    n_init : int, default 1
        Number of starts; the best final lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default "kmeans"
        How the initial responsibilities are drawn (as scikit-learn; the k-means is probmix's).
    weights_init : array (K,), optional
    means_init : array (K, D), optional
    precisions_init : array, optional
        Initial precisions in the native shape of ``covariance_type``: (K, D, D) full,
        (D, D) tied, (K, D) diag, (K,) spherical. Each given ``*_init`` replaces the value
        computed from the initial responsibilities.
    random_state : int, numpy RandomState or Generator, or None
        Mapped to probmix's explicit seed (see :func:`~probmix.sklearn._base.seed_from_random_state`).
    warm_start : bool, default False
        Refit from the previous solution (``n_init`` is then ignored).
    verbose : int, default 0
        Above 0, show a progress bar of the EM iterations.
    verbose_interval : int, default 10
        Accepted for compatibility; probmix shows a progress bar instead of periodic lines.
    device : str or torch.device, optional
        Where to compute ("cpu", "cuda"); default the device of ``X`` (CPU for arrays).
    dtype : torch.float32 or torch.float64, optional
        Default float64 on the CPU, float32 on a GPU.

    Attributes
    ----------
    weights_ : ndarray (K,)
    means_ : ndarray (K, D)
    covariances_, precisions_, precisions_cholesky_ : ndarray
        Native shapes: (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical. The precision
        Cholesky factor U is upper triangular with precision = U Uᵀ (scikit-learn's convention).
    converged_ : bool
    n_iter_ : int
        EM steps of the kept start.
    lower_bound_ : float
        Mean log-likelihood per sample of the kept start at its last E-step.
    lower_bounds_ : list of float
        ``lower_bound_`` at every iteration of the kept start.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` was a DataFrame with string column names.
    result_ : probmix.Fit
        The probmix fit behind the estimator (``parameter_table()``, ``to_arviz()``, ...).

    Examples
    --------
    >>> from probmix.sklearn import GaussianMixture   # was: from sklearn.mixture import ...
    >>> gm = GaussianMixture(n_components=3, random_state=0).fit(X)  # doctest: +SKIP
    >>> gm.means_, gm.predict(X), gm.bic(X)                         # doctest: +SKIP
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10, device=None, dtype=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.device = device
        self.dtype = dtype

    def _check_params(self) -> None:
        """Nothing beyond the shared options; the ``*_init`` arrays are checked against X."""

    def _given(self, name: str, shape: tuple, x: torch.Tensor) -> torch.Tensor | None:
        """A ``*_init`` option as a tensor of ``shape``, or None when not given."""
        value = getattr(self, name)
        if value is None:
            return None
        t = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=x.dtype, device=x.device)
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for n_components="
                             f"{self.n_components}, covariance_type={self.covariance_type!r} and "
                             f"{x.shape[1]} features; got {tuple(t.shape)}.")
        return t

    def _initial_params(self, x: torch.Tensor, seed: int, warm: bool) -> dict:
        """Initial weights (R, K), means (R, K, D), covariances (R, native), as scikit-learn.

        Parameters from the initial responsibilities (one M-step with ``reg_covar``), then each
        given ``weights_init``/``means_init``/``precisions_init`` put in place; or the previous
        solution when warm-starting.
        """
        k, d, family = self.n_components, x.shape[1], self._family
        if warm:
            prev = self.result_.params
            return {key: torch.as_tensor(prev[key], dtype=x.dtype, device=x.device)[None]
                    for key in ("weights", "means", "covariances")}
        resp = self._start(x, seed).transpose(1, 2)  # (R, K, N)
        data = em_steps.PreparedData(x, family)
        s = em_steps.stats_from_responsibilities(data, lambda rows: resp[:, :, rows])  # (R, K, F)
        weights, means, cov = em_steps.m_step(family, s, prior=None,
                                              reg_covar=self.reg_covar / data.scale**2)[:3]
        means, cov = means * data.scale + data.shift, cov * data.scale**2
        r = weights.shape[0]
        given_w = self._given("weights_init", (k,), x)
        given_m = self._given("means_init", (k, d), x)
        given_p = self._given("precisions_init", family.cov_shape(k, d), x)
        if given_w is not None:
            weights = given_w.expand(r, k)
        if given_m is not None:
            means = given_m.expand(r, k, d)
        if given_p is not None:
            if not _positive_definite(given_p,
                                      matrices=self.covariance_type in ("full", "tied")):
                raise ValueError("precisions_init must hold symmetric positive-definite "
                                 "precisions (finite, every eigenvalue > 0); one of them is "
                                 "singular or not positive definite. Pass valid precisions, or "
                                 "leave precisions_init=None.")
            cov = family.covariance_from_precision(given_p).expand_as(cov)
        return {"weights": weights, "means": means, "covariances": cov}

    def _fit(self, x: torch.Tensor, *, seed: int, warm: bool) -> None:
        model = _Model(self.n_components, covariance=self.covariance_type, prior="flat")
        init = self._initial_params(x, seed, warm)
        options = dict(engine="map", method="em", init=init, tol=self.tol, stop="change",
                       reg_covar=self.reg_covar, reg_covar_relative=False, seed=seed,
                       progress=self.verbose > 0)
        if warm:  # as scikit-learn: the first step's bound is compared with the previous fit's
            first = probmix_fit(model, x, max_iter=1, **options)
            if abs(first.lower_bounds[0] - self.lower_bound_) < self.tol:
                self._set_fit(dataclasses.replace(first, converged=True), x)
                return
        self._set_fit(probmix_fit(model, x, max_iter=self.max_iter, **options), x)

    def _set_fit(self, fit, x: torch.Tensor) -> None:
        opts = dict(dtype=x.dtype, device=x.device)
        self.weights_ = fit.params["weights"]
        self.means_ = fit.params["means"]
        self._set_covariance_attributes(torch.as_tensor(fit.params["covariances"], **opts))
        self.converged_ = fit.converged
        self.n_iter_ = fit.n_iter
        self.lower_bounds_ = [float(v) for v in fit.lower_bounds]
        self.lower_bound_ = self.lower_bounds_[-1]
        self.result_ = fit

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log π_k + log N(x_n | μ_k, Σ_k), shape (N, K)."""
        return self.result_._log_joint(x)

    def _n_parameters(self) -> int:
        """Free parameters: K - 1 weights, K·D means and the covariance parameters."""
        return self.result_.n_parameters

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X``: -2 log L + p log N (lower is better)."""
        n = self._fitted_input(X).shape[0]
        return -2.0 * self.score(X) * n + self._n_parameters() * float(np.log(n))

    def aic(self, X) -> float:
        """Akaike information criterion on ``X``: -2 log L + 2 p (lower is better)."""
        n = self._fitted_input(X).shape[0]
        return -2.0 * self.score(X) * n + 2.0 * self._n_parameters()


def _positive_definite(precision: torch.Tensor, *, matrices: bool) -> bool:
    """Whether every precision is finite and positive definite (a matrix's Cholesky exists)."""
    if not bool(torch.isfinite(precision).all()):
        return False
    if not matrices:
        return bool((precision > 0).all())
    sym = bool(torch.allclose(precision, precision.mT, rtol=1e-10, atol=0.0))
    return sym and bool((torch.linalg.cholesky_ex(precision).info == 0).all())
