"""Draw new data from a fitted Gaussian mixture (``Fit.sample``)."""

from __future__ import annotations

import numpy as np

__all__ = ["sample_fit", "sample_mixture"]


def sample_mixture(weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, n: int, *,
                   seed) -> tuple[np.ndarray, np.ndarray]:
    """n points of a Gaussian mixture, or of a posterior predictive over S parameter draws.

    Parameters
    ----------
    weights : ndarray (S, K)
    means : ndarray (S, K, D)
    covariances : ndarray (S, K, D, D)
        S = 1 for a point estimate; S > 1: each point first picks a draw s uniformly, so the
        points follow the posterior predictive (1/S) Σ_s p(x | θ_s).
    n : int
        Number of points, >= 1.
    seed : int or None
        Seed of the numpy generator (None: fresh OS entropy).

    Returns
    -------
    x : ndarray (n, D)
    labels : ndarray (n,) int
        The component each point was drawn from, in increasing order (as scikit-learn's
        ``GaussianMixture.sample``).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int (the number of points to draw); got {n!r}.")
    rng = np.random.default_rng(seed)
    s, k, d = means.shape
    draw = rng.integers(0, s, size=n) if s > 1 else np.zeros(n, dtype=np.int64)  # (n,)
    p = np.clip(weights[draw], 0.0, None)  # (n, K)
    cum = np.cumsum(p / p.sum(1, keepdims=True), axis=1)  # (n, K)
    labels = np.minimum((cum < rng.random((n, 1))).sum(1), k - 1)  # (n,) inverse CDF
    order = np.lexsort((draw, labels))  # group by component, as scikit-learn returns them
    draw, labels = draw[order], labels[order]
    chol = np.linalg.cholesky(covariances)  # (S, K, D, D)
    eps = rng.standard_normal((n, d))  # (n, D)
    x = means[draw, labels] + np.einsum("nij,nj->ni", chol[draw, labels], eps)  # (n, D)
    return x, labels


def sample_fit(fit, n: int, *, seed: int | None = 0):
    """:meth:`probmix.Fit.sample`: ``n`` points and their components from a Gaussian fit,
    at its mode (MAP) or from the posterior predictive (a random parameter draw per point)."""
    k, d = fit.n_components, fit.n_features
    if fit.draws and "weights" in fit.draws and "means" in fit.draws:
        w = np.asarray(fit.draws["weights"]).reshape(-1, k)
        mu = np.asarray(fit.draws["means"]).reshape(-1, k, d)
        cov = fit.covariance_draws.reshape(len(w), k, d, d)
    else:
        w, mu, cov = fit.weights[None], fit.means[None], fit.covariances[None]
    return sample_mixture(np.asarray(w, dtype=np.float64), np.asarray(mu, dtype=np.float64),
                          np.asarray(cov, dtype=np.float64), n, seed=seed)
