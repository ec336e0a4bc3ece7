"""Draw new data from a fitted Gaussian mixture (``Fit.sample``)."""

from __future__ import annotations

import numpy as np

__all__ = ["sample_mixture"]


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
