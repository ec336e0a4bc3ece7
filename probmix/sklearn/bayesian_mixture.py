"""``probmix.sklearn.BayesianGaussianMixture``: scikit-learn's variational mixture, on probmix CAVI.

The fit is ``probmix.fit(probmix.GaussianMixture(K, covariance=covariance_type, prior=Prior(...),
weights_prior=...), X, engine="svi", method="cavi")``: closed-form coordinate-ascent
variational inference (:func:`probmix.infer.vi.cavi.fit_cavi`) from scikit-learn's initial
responsibilities, with scikit-learn's priors and ``reg_covar``.

Where the two differ (see :mod:`probmix.infer.vi.cavi` for the algebra): for "full" covariances
with ``weight_concentration_prior_type="dirichlet_distribution"`` the updates are identical, so
the fits agree to rounding from the same start. For "tied", "diag" and "spherical" probmix runs
the exact mean-field updates of the model it declares (scikit-learn's tied update uses
N/K for N and its diag/spherical E-step uses the Wishart's E[log|Λ|]), and for
"dirichlet_process" it truncates the stick-breaking properly (K - 1 sticks, the rest to the
last component) where scikit-learn breaks K sticks and renormalises; the fits then differ
slightly. ``lower_bound_`` is the full ELBO, a true lower bound on log p(X) (scikit-learn's
drops the constants of its priors).
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import torch

from probmix.infer.vi.cavi import expected_log_joint
from probmix.infer.dispatch import fit as probmix_fit
from probmix.model.gaussian_mixture import GaussianMixture as _Model
from probmix.model.priors import Prior
from probmix.sklearn._mixture import MixtureBase

__all__ = ["BayesianGaussianMixture"]

WEIGHT_PRIOR_TYPES = {"dirichlet_process": "dirichlet_process",
                      "dirichlet_distribution": "dirichlet"}


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float > 0 or None; got {value!r} "
                        f"({type(value).__name__}).")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a float > 0 or None; got {value!r}.")
    return float(value)


class BayesianGaussianMixture(MixtureBase):
    """Variational Bayesian Gaussian mixture, with scikit-learn's API.

    A script written for ``sklearn.mixture.BayesianGaussianMixture`` runs unchanged with
    ``from probmix.sklearn import BayesianGaussianMixture``; ``device`` and ``dtype`` are added,
    and ``result_`` holds the probmix fit with draws from the variational posterior
    (``result_.to_arviz()``, ``result_.summary()``).

    Parameters
    ----------
    n_components : int, default 1
        The truncation level: components the data do not need get weights near 0.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    tol : float, default 1e-3
        Stop when the ELBO (a total over the samples, as scikit-learn) changes by less.
    reg_covar : float, default 1e-6
        Added to the diagonal of every sample covariance in the update of q (as scikit-learn).
    max_iter : int, default 100
    n_init : int, default 1
        Number of starts; the highest ELBO is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default "kmeans"
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}
        Stick-breaking (truncated Dirichlet process) or Dirichlet weights.
    weight_concentration_prior : float > 0, optional
        γ (Dirichlet process) or α (Dirichlet). Default 1 / n_components.
    mean_precision_prior : float > 0, optional
        β₀. Default 1.
    mean_prior : array (D,), optional
        m₀. Default the mean of X.
    degrees_of_freedom_prior : float > D - 1, optional
        ν₀. Default D.
    covariance_prior : float or array, optional
        Ψ₀: (D, D) for "full" and "tied", (D,) for "diag", a float for "spherical". Default the
        (unbiased) covariance of X, its diagonal, or its mean variance.
    random_state, warm_start, verbose, verbose_interval, device, dtype
        As :class:`probmix.sklearn.GaussianMixture`.

    Attributes
    ----------
    weights_ : ndarray (K,)
        E_q[π].
    means_ : ndarray (K, D)
        Means m_k of q(μ_k | Λ_k).
    covariances_, precisions_, precisions_cholesky_ : ndarray
        (E_q[Λ_k])⁻¹, E_q[Λ_k] and its Cholesky factor, in the native shapes.
    weight_concentration_ : ndarray (K,) or tuple of two ndarray (K - 1,)
        Dirichlet: α + N_k. Dirichlet process: the Beta parameters (1 + N_j, γ + Σ_{i>j} N_i)
        of the K - 1 sticks (scikit-learn has K sticks).
    mean_precision_ : ndarray (K,)
        β_k.
    degrees_of_freedom_ : ndarray (K,) or float (tied)
        ν_k (for diag and spherical, the Gamma shape written as scikit-learn's ν_k).
    weight_concentration_prior_, mean_precision_prior_, mean_prior_,
    degrees_of_freedom_prior_, covariance_prior_
        The priors used, defaults filled in.
    converged_, n_iter_ : bool, int
    lower_bound_ : float
        The final ELBO of the kept start (total over the samples, every constant kept).
    lower_bounds_ : list of float
        The ELBO after each iteration of the kept start.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` was a DataFrame with string column names.
    result_ : probmix.Fit
        The probmix fit: ``engine="svi"``, exact posterior means in ``params``, draws from q.
    """

    def __init__(self, *, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, device=None, dtype=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.device = device
        self.dtype = dtype

    def _check_params(self) -> None:
        if self.weight_concentration_prior_type not in WEIGHT_PRIOR_TYPES:
            raise ValueError(f"weight_concentration_prior_type must be one of "
                             f"{tuple(WEIGHT_PRIOR_TYPES)}; got "
                             f"{self.weight_concentration_prior_type!r}.")
        for name in ("weight_concentration_prior", "mean_precision_prior"):
            if getattr(self, name) is not None:
                _positive(getattr(self, name), name)

    # --- the prior -------------------------------------------------------------------------------
    def _default_scale(self, x: np.ndarray) -> np.ndarray | None:
        """scikit-learn's default Ψ₀ (the unbiased covariance of X); None when it is not
        positive definite (one row, constant features), leaving probmix's guarded default."""
        if x.shape[0] < 2:
            return None
        cov = np.atleast_2d(np.cov(x.T))
        if self.covariance_type == "diag":
            cov = np.diag(np.diag(cov))
        elif self.covariance_type == "spherical":
            cov = np.mean(np.diag(cov)) * np.eye(x.shape[1])
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return None
        return cov

    def _given_scale(self, d: int) -> np.ndarray:
        """``covariance_prior`` in its native shape -> the (D, D) Ψ₀ of probmix.Prior."""
        value = np.asarray(self.covariance_prior, dtype=np.float64)
        shapes = {"full": (d, d), "tied": (d, d), "diag": (d,), "spherical": ()}
        if value.shape != shapes[self.covariance_type]:
            raise ValueError(f"covariance_prior must have shape {shapes[self.covariance_type]} "
                             f"for covariance_type={self.covariance_type!r} and {d} features; "
                             f"got {value.shape}.")
        if self.covariance_type == "diag":
            return np.diag(value)
        if self.covariance_type == "spherical":
            return float(_positive(float(value), "covariance_prior")) * np.eye(d)
        return value

    def _model(self, x: torch.Tensor) -> _Model:
        k, d = self.n_components, x.shape[1]
        xn = x.detach().cpu().numpy()
        alpha = (1.0 / k if self.weight_concentration_prior is None
                 else _positive(self.weight_concentration_prior, "weight_concentration_prior"))
        mean_loc = None
        if self.mean_prior is not None:
            mean_loc = np.asarray(self.mean_prior, dtype=np.float64)
            if mean_loc.shape != (d,):
                raise ValueError(f"mean_prior must have shape ({d},); got {mean_loc.shape}.")
        dof = self.degrees_of_freedom_prior
        if dof is not None and not (isinstance(dof, numbers.Real) and dof > d - 1):
            raise ValueError(f"degrees_of_freedom_prior must be a float > n_features - 1 = "
                             f"{d - 1}; got {dof!r}.")
        scale = (self._default_scale(xn) if self.covariance_prior is None
                 else self._given_scale(d))
        # scikit-learn's defaults where it has None (probmix's own defaults differ: issue 16)
        prior = Prior(weight_concentration=alpha, mean_loc=mean_loc,
                      mean_precision=1.0 if self.mean_precision_prior is None
                      else self.mean_precision_prior,
                      dof=float(d) if dof is None else float(dof), scale=scale)
        stick = self.weight_concentration_prior_type == "dirichlet_process" and k > 1
        # one component: the weight is 1 under either prior; probmix's stick-breaking needs K >= 2
        return _Model(k, covariance=self.covariance_type, prior=prior,
                      weights_prior="dirichlet_process" if stick else "dirichlet")

    def _set_prior_attributes(self, model: _Model, x: torch.Tensor) -> None:
        prior = model.resolve_prior(x)
        scale = prior.scale.cpu().numpy()
        self.weight_concentration_prior_ = float(prior.alpha[0])
        self.mean_precision_prior_ = float(prior.mean_precision)
        self.mean_prior_ = prior.mean_loc.cpu().numpy()
        self.degrees_of_freedom_prior_ = float(prior.dof)
        self.covariance_prior_ = {"full": scale, "tied": scale, "diag": np.diag(scale).copy(),
                                  "spherical": float(np.trace(scale)) / scale.shape[0]
                                  }[self.covariance_type]

    # --- the fit ---------------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, *, seed: int, warm: bool) -> None:
        model = self._model(x)
        options = dict(engine="svi", method="cavi", tol=self.tol / x.shape[0],
                       reg_covar=self.reg_covar, seed=seed, progress=self.verbose > 0)
        best = None
        if warm:  # continue from q: a local update on x, then on (as scikit-learn)
            options["warm_start"] = self.result_
            first = probmix_fit(model, x, max_iter=1, **options)
            # as scikit-learn: the first bound is compared with the previous fit's
            if abs(-first.losses[0] - self.lower_bound_) < self.tol:
                best = dataclasses.replace(first, converged=True)
            else:
                best = probmix_fit(model, x, max_iter=self.max_iter, **options)
        else:
            for resp in self._start(x, seed):  # (R, N, K): one fit per start
                fit = probmix_fit(model, x, init=resp, max_iter=self.max_iter, **options)
                if best is None or fit.options["elbo"] > best.options["elbo"]:
                    best = fit
        self._set_prior_attributes(model, x)
        self._set_variational_attributes(best, x)

    def _set_variational_attributes(self, fit, x: torch.Tensor) -> None:
        q, d = fit.options["variational"], x.shape[1]
        cov_type = self.covariance_type
        self.weights_ = fit.params["weights"]
        self.means_ = q["means"]
        self.mean_precision_ = q["mean_precision"]
        if "weight_concentration" in q:
            self.weight_concentration_ = q["weight_concentration"]
        else:
            self.weight_concentration_ = (q["sticks_concentration1"], q["sticks_concentration0"])
        if cov_type in ("full", "tied"):
            dof, inv = q["dof"], q["inverse_scale"]
            self.degrees_of_freedom_ = float(dof) if cov_type == "tied" else dof
            cov = inv / np.asarray(dof)[..., None, None]  # (E[Λ])⁻¹ = W⁻¹ / ν
        else:
            shape, rate = q["shape"], q["rate"]
            self.degrees_of_freedom_ = 2 * shape[:, 0] if cov_type == "diag" else 2 * shape / d
            cov = rate / shape  # (E[λ])⁻¹ = b / a
        self._set_covariance_attributes(torch.as_tensor(cov, dtype=x.dtype, device=x.device))
        self.converged_ = fit.converged
        self.n_iter_ = fit.n_iter
        self.lower_bounds_ = [float(v) for v in -fit.losses]
        self.lower_bound_ = self.lower_bounds_[-1]
        self.result_ = fit

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """ρ_nk = E_q[log π_k + log N(x_n | μ_k, Λ_k)], shape (N, K): its softmax is q(z_n)."""
        return expected_log_joint(self.result_, x)
