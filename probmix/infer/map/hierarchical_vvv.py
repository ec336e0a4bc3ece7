"""Model-based agglomerative hierarchical clustering under the unconstrained (VVV) model.

mclust's default tree (``hc(modelName = "VVV")``, Fraley 1998): merge at each step the pair
of clusters whose merger lowers the classification likelihood of a Gaussian model with
its own full covariance per cluster the least. With W_C the scatter of cluster C and n_C
its size, each cluster contributes

    c(C) = n_C log | (W_C + α I) / n_C |,

and merging i and j costs c(i ∪ j) - c(i) - c(j), where W_{i∪j} = W_i + W_j +
n_i n_j / (n_i + n_j) (x̄_i - x̄_j)(x̄_i - x̄_j)ᵀ. The ridge α I makes the determinant of
small clusters (singletons have W = 0) finite; as mclust, α is the mean per-coordinate
variance of the (SVD-transformed) data, tr(W_all) / (N D). Unlike Ward's criterion (the
EII tree of :mod:`probmix.infer.map.hierarchical`), clusters may grow elongated, which
starts EM nearer the optimum on correlated data (wine, 13 columns: many (model, K) fits
end 20-90 nats higher than from Ward's start).

The merges are exact (no nearest-neighbour chain: the VVV cost is not reducible): O(M²)
memory and O(M² D³) time for M rows, so the caller builds it on at most
:data:`MAX_POINTS` rows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_POINTS", "vvv_merges", "partition"]

MAX_POINTS = 400  # 0.1-0.3 s for the whole tree on one core at D = 2..13


def _cost(scatter: np.ndarray, counts: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """n log |(W + α I) / n| for scatters (M, D, D) and counts (M,), shape (M,)."""
    d = scatter.shape[-1]
    return counts * (np.linalg.slogdet(scatter + ridge)[1] - d * np.log(counts))


def vvv_merges(z: np.ndarray) -> np.ndarray:
    """The merge sequence of the VVV tree of the rows of ``z`` (M, D).

    Returns
    -------
    ndarray (M - 1, 2) of int
        Step t merges cluster ``merges[t, 1]`` into ``merges[t, 0]`` (clusters named by the
        index of a row they hold), as :func:`partition` replays.
    """
    m, d = z.shape
    z = np.asarray(z, dtype=np.float64)
    ridge = max(float(np.trace(np.cov(z.T, bias=True).reshape(d, d))) / d, 1e-300) * np.eye(d)
    counts = np.ones(m)
    means = z.copy()
    scatter = np.zeros((m, d, d))
    own = _cost(scatter[:1], counts[:1], ridge)[0] * np.ones(m)
    alive = np.ones(m, dtype=bool)
    gain = np.full((m, m), np.inf)  # merge costs, upper triangle (i < j)

    def merged_cost(i: int, others: np.ndarray) -> np.ndarray:
        n_i, n_o = counts[i], counts[others]
        diff = means[i] - means[others]  # (J, D)
        w = scatter[i] + scatter[others] + (n_i * n_o / (n_i + n_o))[:, None, None] * \
            diff[:, :, None] * diff[:, None, :]
        return _cost(w, n_i + n_o, ridge) - own[i] - own[others]

    for i in range(m - 1):
        gain[i, i + 1:] = merged_cost(i, np.arange(i + 1, m))
    merges = np.empty((m - 1, 2), dtype=np.int64)
    for t in range(m - 1):
        i, j = divmod(int(np.argmin(gain)), m)  # i < j
        merges[t] = i, j
        n_i, n_j = counts[i], counts[j]
        diff = means[i] - means[j]
        scatter[i] = scatter[i] + scatter[j] + (n_i * n_j / (n_i + n_j)) * np.outer(diff, diff)
        means[i] = (n_i * means[i] + n_j * means[j]) / (n_i + n_j)
        counts[i] = n_i + n_j
        own[i] = _cost(scatter[i:i + 1], counts[i:i + 1], ridge)[0]
        alive[j] = False
        gain[j, :] = np.inf
        gain[:, j] = np.inf
        others = np.flatnonzero(alive)
        others = others[others != i]
        if others.size:
            cost = merged_cost(i, others)
            low, high = np.minimum(others, i), np.maximum(others, i)
            gain[low, high] = cost
    return merges


def partition(merges: np.ndarray, k: int) -> np.ndarray:
    """Labels 0..K-1 (M,) of the tree's partition into ``k`` clusters (the first M - K merges)."""
    m = merges.shape[0] + 1
    parent = np.arange(m)
    for i, j in merges[:m - k]:
        parent[j] = i
    for _ in range(m):  # follow the merges to each root (every step halves the depth)
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    return np.unique(parent, return_inverse=True)[1]
