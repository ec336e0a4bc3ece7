"""Built-in data sets: the ones of the walkthroughs probmix's users come from."""

from __future__ import annotations

import numpy as np

__all__ = ["three_clusters", "THREE_CLUSTERS"]

#: The three clusters of the scikit-learn walkthrough. Its first covariance,
#: [[0.1, 0.2], [0.2, 0.1]], is not positive semi-definite (eigenvalues 0.3 and -0.1);
#: numpy samples from it anyway, probmix refuses, so we use [[0.3, 0.2], [0.2, 0.3]].
THREE_CLUSTERS = {
    "weights": np.full(3, 1 / 3),
    "means": np.array([[5.0, -2.0], [1.0, 5.0], [-5.0, -1.0]]),
    "covariances": np.array([[[0.3, 0.2], [0.2, 0.3]],
                             [[1.0, 0.5], [0.5, 1.0]],
                             [[2.0, 0.0], [0.0, 5.0]]]),
}


def three_clusters(n_per_cluster: int = 1000, *, seed: int = 0):
    """Three 2-D Gaussian clusters of ``n_per_cluster`` points each.

    Parameters
    ----------
    n_per_cluster : int
    seed : int

    Returns
    -------
    x : ndarray (3 · n_per_cluster, 2)
    source : ndarray (3 · n_per_cluster,) int
        The true cluster of each point (0, 1, 2), in blocks.
    """
    rng = np.random.default_rng(seed)
    chols = np.linalg.cholesky(THREE_CLUSTERS["covariances"])
    x = np.concatenate([
        mean + rng.standard_normal((n_per_cluster, 2)) @ chol.T
        for mean, chol in zip(THREE_CLUSTERS["means"], chols)
    ])
    return x, np.repeat(np.arange(3), n_per_cluster)
