"""The hierarchical starts of EM: Ward's (EII) tree and mclust's unconstrained (VVV) tree."""

import itertools

import numpy as np

from probmix.infer.map.hierarchical import hierarchical_partitions, svd_transform
from probmix.infer.map.hierarchical_vvv import partition, vvv_merges


def _adjusted_rand(a, b):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


def _brute_force_merges(z):
    """The greedy VVV merges recomputed from scratch at every step (the oracle), with the
    cost of mclust's hcvvv (src/mclust.f, vvvtij with β = 1): n log(|W/n| + (tr W + α)/n)
    for clusters of more than D rows, n log((tr W + α)/n) otherwise, α = tr(W_all)/(N D)."""
    m, d = z.shape
    alpha = np.trace(np.cov(z.T, bias=True).reshape(d, d)) / d
    clusters = [[i] for i in range(m)]

    def cost(rows):
        x = z[rows]
        n = len(rows)
        w = (x - x.mean(0)).T @ (x - x.mean(0))
        det = np.linalg.det(w / n) if n > d else 0.0
        return n * np.log(det + (np.trace(w) + alpha) / n)

    merges = []
    while len(clusters) > 1:
        best = min(itertools.combinations(range(len(clusters)), 2),
                   key=lambda p: cost(clusters[p[0]] + clusters[p[1]]) - cost(clusters[p[0]])
                   - cost(clusters[p[1]]))
        a, b = best
        merges.append((min(clusters[a]), min(clusters[b])))
        clusters[a] = clusters[a] + clusters[b]
        del clusters[b]
    return merges


def test_vvv_merges_equal_the_greedy_oracle():
    z = np.random.default_rng(0).normal(size=(14, 2)) * [3.0, 0.5]
    fast = vvv_merges(z)
    slow = _brute_force_merges(z)
    # the same clusters merge at every step (named by their smallest row here)
    for k in range(1, 14):
        labels = partition(fast, k)
        groups = sorted(sorted(np.flatnonzero(labels == c).tolist()) for c in range(k))
        parent = list(range(14))
        for a, b in slow[:14 - k]:
            for i, p in enumerate(parent):
                if p == b:
                    parent[i] = a
        expect = sorted(sorted(i for i in range(14) if parent[i] == r) for r in set(parent))
        assert groups == expect, k


def test_vvv_tree_separates_a_tight_cluster_from_a_diffuse_one_where_ward_does_not():
    """Ward's criterion (equal spherical clusters) cuts the diffuse cluster in pieces; the
    VVV criterion lets each cluster keep its own spread (why mclust's hc is VVV)."""
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        n = 150
        x = np.concatenate([rng.normal(size=(n, 2)) * 0.2,
                            rng.normal(size=(n, 2)) * 2.0 + [2.5, 0.0]])
        truth = np.repeat([0, 1], n)
        _, vvv = hierarchical_partitions(x, [2], model="VVV")
        _, ward = hierarchical_partitions(x, [2], model="EII")
        assert _adjusted_rand(vvv[2], truth) > 0.8, seed  # 0.85, 0.88, 0.91
        assert _adjusted_rand(ward[2], truth) < 0.5, seed  # 0.25, 0.35, 0.26


def test_partitions_have_k_clusters_and_subsample_beyond_max_points():
    x = np.random.default_rng(2).normal(size=(700, 3))
    z = svd_transform(x)
    assert np.allclose(z.T @ z, np.diag(np.diag(z.T @ z)), atol=1e-8)  # uncorrelated columns
    rows, labels = hierarchical_partitions(x, [1, 4, 9], model="VVV", max_points=200,
                                           rng=np.random.default_rng(0))
    assert rows.shape == (200,) and len(np.unique(rows)) == 200
    for k in (1, 4, 9):
        assert labels[k].shape == (200,) and sorted(np.unique(labels[k])) == list(range(k))


def test_vvv_tree_equals_mclusts_hc_on_the_reference_data():
    """mclust's own hc(X) (modelName "VVV", use "SVD") partition into 3 clusters, stored by
    benchmarks/mclust_reference.py: the same partition on four of the five data sets. On
    faithful (rounded values: many exactly tied merge costs) the ties break differently."""
    from mclust_data import load

    for name in ("iris", "wine", "banknote", "diabetes"):
        x, entry = load(name)
        rows, labels = hierarchical_partitions(x, [3], model="VVV")
        assert len(rows) == len(x)
        assert _adjusted_rand(labels[3], entry["hc"]["partition"]) == 1.0, name


def test_mclust_init_is_the_vvv_trees_partition_and_wards_where_that_tree_is_not_built():
    """init="mclust" is one start: the VVV tree's partition where that tree is built (10 rows
    per feature, at most 20 features), else Ward's, as init="hc"."""
    import torch

    from probmix.infer.map.em_init import initial_partitions
    from probmix.infer.map.em_steps import PreparedData
    from probmix.model.covariance import get_family

    rng = np.random.default_rng(1)
    for n, d, tree in ((300, 3, "VVV"), (300, 25, "EII"), (40, 5, "EII")):
        x = np.concatenate([rng.normal(0, 1, (n // 2, d)), rng.normal(4, 0.5, (n - n // 2, d))])
        data = PreparedData(torch.as_tensor(x), get_family("spherical"))
        got = initial_partitions("mclust", data, 3, 1, 0).numpy()
        assert got.shape == (1, n)
        rows, labels = hierarchical_partitions(data.x.numpy(), [3], model=tree,
                                               rng=np.random.default_rng(0))
        assert len(rows) == n and _adjusted_rand(got[0], labels[3]) == 1.0, (n, d, tree)
        if tree == "EII":
            hc = initial_partitions("hc", data, 3, 1, 0).numpy()
            np.testing.assert_array_equal(got, hc)
