"""KMeans: oracle agreement with scikit-learn's Lloyd, invariants, seeding, errors."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs

from probmix.exceptions import ConvergenceWarning
from probmix.baselines.kmeans import KMeans, kmeans_plusplus, lloyd


@pytest.fixture(scope="module")
def blobs():
    # Overlapping clusters: Lloyd needs a dozen or more iterations to settle.
    x, _ = make_blobs(n_samples=1500, n_features=3, centers=5, cluster_std=2.5, random_state=1)
    return x


def _sklearn(x, init, sample_weight=None, **kw):
    return SkKMeans(len(init), init=init, n_init=1, algorithm="lloyd", **kw).fit(
        x, sample_weight=sample_weight)


def _assert_same_fit(sk, labels, centers, inertia):
    np.testing.assert_array_equal(labels, sk.labels_)
    np.testing.assert_allclose(centers, sk.cluster_centers_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(inertia, sk.inertia_, rtol=1e-10)


# ----------------------------------------------------------------------------- oracle


@pytest.mark.parametrize("init_seed", [0, 1, 2])
def test_same_fit_as_sklearn_from_same_centres(blobs, init_seed):
    rng = np.random.default_rng(init_seed)
    init = blobs[rng.choice(len(blobs), 5, replace=False)]
    sk = _sklearn(blobs, init)
    km = KMeans(5, init=init).fit(blobs)
    assert sk.n_iter_ > 3  # the comparison covers several iterations
    _assert_same_fit(sk, km.labels_, km.cluster_centers_, km.inertia_)
    assert km.n_iter_ == sk.n_iter_
    assert km.converged_


def test_same_fit_as_sklearn_with_sample_weight(blobs):
    rng = np.random.default_rng(3)
    w = rng.uniform(0.1, 3.0, size=len(blobs))
    init = blobs[rng.choice(len(blobs), 5, replace=False)]
    sk = _sklearn(blobs, init, sample_weight=w)
    km = KMeans(5, init=init).fit(blobs, sample_weight=w)
    _assert_same_fit(sk, km.labels_, km.cluster_centers_, km.inertia_)
    assert km.n_iter_ == sk.n_iter_


def test_empty_clusters_reseeded_like_sklearn(blobs):
    # Three centres far from every point are empty after the first assignment.
    init = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [100.0, 100.0, 100.0],
                     [-100.0, 50.0, 0.0], [200.0, 0.0, -50.0]])
    sk = _sklearn(blobs, init)
    km = KMeans(5, init=init).fit(blobs)
    _assert_same_fit(sk, km.labels_, km.cluster_centers_, km.inertia_)
    assert len(np.unique(km.labels_)) == 5
    assert np.all(np.abs(km.cluster_centers_) < 30)  # no centre left stranded


def test_batched_restarts_match_one_at_a_time(blobs):
    rng = np.random.default_rng(4)
    inits = np.stack([blobs[rng.choice(len(blobs), 5, replace=False)] for _ in range(4)])
    labels, centers, inertia, n_iter, converged = lloyd(torch.tensor(blobs), torch.tensor(inits))
    assert labels.shape == (4, len(blobs)) and labels.dtype == torch.long
    assert centers.shape == (4, 5, 3) and inertia.shape == (4,)
    iters = []
    for r in range(4):
        sk = _sklearn(blobs, inits[r])
        _assert_same_fit(sk, labels[r].numpy(), centers[r].numpy(), inertia[r].item())
        iters.append(sk.n_iter_)
    assert len(set(iters)) > 1  # restarts stopped at different iterations while batched
    assert n_iter == max(iters) and converged


def test_kmeans_keeps_lowest_inertia_restart(blobs):
    km = KMeans(5, init="random", n_init=6, seed=0).fit(blobs)
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor(blobs)
    # Rebuild the same draws: the estimator runs every restart and keeps the best.
    from probmix.baselines.kmeans import _random_init
    inits = _random_init(x, 5, 6, None, gen)
    _, _, inertia, _, _ = lloyd(x, inits)
    assert km.inertia_ == pytest.approx(float(inertia.min()), rel=1e-12)


# ----------------------------------------------------------------------------- invariants


def test_inertia_never_increases(blobs):
    rng = np.random.default_rng(5)
    x = torch.tensor(blobs)
    centers = torch.tensor(blobs[rng.choice(len(blobs), 8, replace=False)])[None]
    history = []
    for _ in range(25):  # one Lloyd step at a time, from where the last one stopped
        _, centers, inertia, _, _ = lloyd(x, centers, max_iter=1)
        history.append(inertia.item())
    steps = np.diff(history)
    assert np.all(steps <= 1e-9 * history[0])
    assert steps[0] < 0  # and it does move


def test_integer_weights_act_as_repeated_rows(blobs):
    rng = np.random.default_rng(6)
    w = rng.integers(0, 4, size=len(blobs))  # 0 drops a row, 3 triples it
    x_rep = np.repeat(blobs, w, axis=0)
    a = KMeans(5, n_init=3, seed=7).fit(blobs, sample_weight=w.astype(float))
    b = KMeans(5, n_init=3, seed=7).fit(x_rep)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-9)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-10)
    np.testing.assert_array_equal(np.repeat(a.labels_, w), b.labels_)
    assert a.n_iter_ == b.n_iter_


def test_zero_weight_rows_are_ignored(blobs):
    far = np.full((20, 3), 1e3)  # outliers that would grab a centre if they counted
    x = np.concatenate([blobs, far])
    w = np.r_[np.ones(len(blobs)), np.zeros(20)]
    init = blobs[:5]
    a = KMeans(5, init=init).fit(x, sample_weight=w)
    b = KMeans(5, init=init).fit(blobs)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-9)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-10)
    # k-means++ never seeds from a zero-weight row either.
    gen = torch.Generator().manual_seed(0)
    seeds = kmeans_plusplus(torch.tensor(x), 5, n_init=20, sample_weight=w, generator=gen)
    assert float(seeds.max()) < 100


def test_deterministic_under_seed(blobs):
    a = KMeans(5, n_init=4, seed=11).fit(blobs)
    b = KMeans(5, n_init=4, seed=11).fit(blobs)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    x = torch.tensor(blobs)
    draw = [kmeans_plusplus(x, 5, n_init=3, generator=torch.Generator().manual_seed(s))
            for s in (1, 1, 2)]
    assert torch.equal(draw[0], draw[1])
    assert not torch.equal(draw[0], draw[2])


def test_one_feature_input():
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(-5, 1, 300), rng.normal(0, 0.5, 200),
                        rng.normal(6, 2, 300)])[:, None]
    init = x[[0, 1, 2]]
    sk = _sklearn(x, init)
    km = KMeans(3, init=init).fit(x)
    _assert_same_fit(sk, km.labels_, km.cluster_centers_, km.inertia_)
    assert km.cluster_centers_.shape == (3, 1)
    assert sorted(np.round(km.cluster_centers_[:, 0]).tolist()) == [-5.0, 0.0, 6.0]


def test_single_cluster_is_the_weighted_mean(blobs):
    w = np.random.default_rng(9).uniform(0, 2, size=len(blobs))
    km = KMeans(1, seed=0).fit(blobs, sample_weight=w)
    mean = (w[:, None] * blobs).sum(0) / w.sum()
    np.testing.assert_allclose(km.cluster_centers_[0], mean, atol=1e-10)
    assert km.inertia_ == pytest.approx((w * ((blobs - mean) ** 2).sum(1)).sum(), rel=1e-10)
    assert np.all(km.labels_ == 0) and km.converged_


def test_float32_agrees_with_float64(blobs):
    init = blobs[:5]
    a = KMeans(5, init=init, dtype=torch.float32).fit(blobs)
    b = KMeans(5, init=init).fit(blobs)
    assert a.cluster_centers_.dtype == np.float32
    assert (a.labels_ == b.labels_).mean() > 0.999
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-3)


# ----------------------------------------------------------------------------- seeding


def test_kmeans_plusplus_picks_one_point_per_separated_blob():
    x, y = make_blobs(n_samples=600, centers=[[0, 0], [50, 0], [0, 50], [50, 50], [25, 100]],
                      cluster_std=0.5, random_state=0)
    xt = torch.tensor(x)
    centers = kmeans_plusplus(xt, 5, n_init=16, generator=torch.Generator().manual_seed(3))
    assert centers.shape == (16, 5, 2)
    # Every centre is a data row, and the five centres of each draw sit in five blobs.
    rows = (centers[..., None, :] == xt).all(-1)  # (R, K, N)
    assert bool(rows.any(-1).all())
    blob_of = torch.tensor(y)[rows.float().argmax(-1)]  # (R, K)
    assert all(len(set(b.tolist())) == 5 for b in blob_of)


def test_kmeans_plusplus_first_centre_follows_the_weights():
    x = torch.arange(4, dtype=torch.float64)[:, None]
    w = torch.tensor([0.0, 1.0, 3.0, 0.0])
    c = kmeans_plusplus(x, 1, n_init=4000, sample_weight=w,
                        generator=torch.Generator().manual_seed(0))[:, 0, 0]
    share = (c == 2).double().mean().item()
    assert set(c.tolist()) == {1.0, 2.0}
    assert share == pytest.approx(0.75, abs=0.03)  # 4.6 standard errors


def test_random_init_draws_distinct_positive_weight_rows(blobs):
    from probmix.baselines.kmeans import _random_init
    w = torch.ones(len(blobs), dtype=torch.float64)
    w[::2] = 0
    c = _random_init(torch.tensor(blobs), 5, 30, w, torch.Generator().manual_seed(0))
    idx = (c[..., None, :] == torch.tensor(blobs)).all(-1).float().argmax(-1)  # (R, K)
    assert bool((idx % 2 == 1).all())
    assert all(len(set(r.tolist())) == 5 for r in idx)


# ----------------------------------------------------------------------------- using a fit


def test_predict_transform_and_fit_predict(blobs):
    km = KMeans(5, init=blobs[:5])
    labels = km.fit_predict(blobs)
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_array_equal(km.predict(blobs), km.labels_)
    sk = _sklearn(blobs, blobs[:5])
    new = np.random.default_rng(10).normal(scale=8, size=(50, 3))
    np.testing.assert_array_equal(km.predict(new), sk.predict(new))
    dist = km.transform(new)
    assert dist.shape == (50, 5)
    np.testing.assert_allclose(dist, sk.transform(new), atol=1e-9)
    np.testing.assert_array_equal(dist.argmin(1), km.predict(new))


def test_warns_when_max_iter_is_hit(blobs):
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        km = KMeans(5, init=blobs[:5], max_iter=2).fit(blobs)
    assert km.n_iter_ == 2 and not km.converged_
    _, _, _, n_iter, converged = lloyd(torch.tensor(blobs), torch.tensor(blobs[:5]), max_iter=2)
    assert n_iter == 2 and not converged


def test_no_warning_when_converged(blobs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(5, seed=0).fit(blobs)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, err, text", [
    ({"n_clusters": 0}, ValueError, "n_clusters"),
    ({"n_clusters": 2.5}, TypeError, "n_clusters"),
    ({"n_clusters": 3, "init": "kmeans"}, ValueError, "'kmeans'"),
    ({"n_clusters": 3, "n_init": 0}, ValueError, "n_init"),
    ({"n_clusters": 3, "max_iter": 0}, ValueError, "max_iter"),
    ({"n_clusters": 3, "tol": -1.0}, ValueError, "tol"),
    ({"n_clusters": 3, "seed": "zero"}, TypeError, "seed"),
])
def test_bad_options_are_named(kwargs, err, text):
    with pytest.raises(err, match=text):
        KMeans(**kwargs)


def test_bad_fit_inputs_are_named(blobs):
    with pytest.raises(ValueError, match="n_clusters=20"):
        KMeans(20).fit(blobs[:10])
    with pytest.raises(ValueError, match=r"init must have shape \(n_clusters, 3\)"):
        KMeans(2, init=np.zeros((2, 4))).fit(blobs)
    with pytest.raises(ValueError, match="n_clusters=3"):
        KMeans(3, init=np.zeros((2, 3))).fit(blobs)
    with pytest.raises(ValueError, match="sample_weight"):
        KMeans(3).fit(blobs, sample_weight=np.ones(7))
    with pytest.raises(ValueError, match="sample_weight"):
        KMeans(3, init="random").fit(blobs[:4], sample_weight=[1.0, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        KMeans(2).fit(np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]))


def test_predict_before_fit_and_wrong_features(blobs):
    with pytest.raises(RuntimeError, match="not fitted"):
        KMeans(3).predict(blobs)
    km = KMeans(3, seed=0).fit(blobs)
    with pytest.raises(ValueError, match="2 feature"):
        km.predict(blobs[:, :2])
    with pytest.raises(ValueError, match="2 feature"):
        km.transform(blobs[:, :2])


def test_function_api_errors(blobs):
    x = torch.tensor(blobs)
    with pytest.raises(TypeError, match="generator"):
        kmeans_plusplus(x, 3, generator=0)
    with pytest.raises(ValueError, match="centers must have shape"):
        lloyd(x, torch.zeros(2, 3, 2))


def test_first_argmin_equals_torch_min_indices_with_ties():
    from probmix.baselines.kmeans import first_argmin

    gen = torch.Generator().manual_seed(0)
    dist = torch.randint(0, 4, (3, 7, 500), generator=gen).double()  # many exact ties
    np.testing.assert_array_equal(first_argmin(dist).numpy(),
                                  dist.argmin(1).numpy())  # argmin returns the first minimum
    assert first_argmin(torch.randn(1, 1, 5)).eq(0).all()
