"""MeanShift: oracle agreement with scikit-learn (flat kernel), the 7-blob walkthrough, paths."""

import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.cluster import MeanShift as SkMeanShift
from sklearn.cluster import estimate_bandwidth as sk_estimate_bandwidth
from sklearn.datasets import make_blobs, make_circles, make_moons

import probmix.baselines.meanshift_ascent as meanshift_ascent
from probmix.exceptions import ConvergenceWarning
from probmix.baselines.meanshift import MeanShift, estimate_bandwidth


def _data(name):
    if name == "blobs":
        return make_blobs(n_samples=1500, centers=4, cluster_std=0.7, random_state=0)[0]
    if name == "circles":
        return make_circles(factor=0.5, noise=0.05, n_samples=1500, random_state=0)[0]
    return make_moons(noise=0.05, n_samples=1500, random_state=0)[0]


def _seven_blobs():
    """Walkthrough 3: 7 centroids uniform in [-50, 50]^2, 250 points each, covariance 5 I."""
    rng = np.random.default_rng(11)
    centres = rng.uniform(-50, 50, size=(7, 2))
    truth = np.repeat(np.arange(7), 250)
    return centres[truth] + rng.normal(scale=np.sqrt(5.0), size=(1750, 2)), centres, truth


def _assert_same_as_sklearn(sk, ms):
    assert ms.cluster_centers_.shape == sk.cluster_centers_.shape
    np.testing.assert_allclose(ms.cluster_centers_, sk.cluster_centers_, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(ms.labels_, sk.labels_)


# ----------------------------------------------------------------------------- bandwidth


@pytest.mark.parametrize("name", ["blobs", "moons"])
@pytest.mark.parametrize("quantile", [0.0, 0.1, 0.3])
def test_estimate_bandwidth_matches_sklearn(name, quantile):
    x = _data(name)
    assert estimate_bandwidth(x, quantile=quantile) == pytest.approx(
        sk_estimate_bandwidth(x, quantile=quantile), rel=1e-10, abs=1e-12)


def test_estimate_bandwidth_subsample_is_seeded():
    x = _data("blobs")
    a = estimate_bandwidth(x, n_samples=300, seed=1)
    assert a == estimate_bandwidth(x, n_samples=300, seed=1)
    assert a != estimate_bandwidth(x, n_samples=300, seed=2)
    assert a == pytest.approx(estimate_bandwidth(x), rel=0.25)


# ----------------------------------------------------------------------------- oracle, flat kernel


@pytest.mark.parametrize("name, quantile", [("blobs", 0.2), ("circles", 0.1), ("moons", 0.1)])
def test_flat_kernel_matches_sklearn_with_bin_seeds(name, quantile):
    x = _data(name)
    bw = sk_estimate_bandwidth(x, quantile=quantile)
    sk = SkMeanShift(bandwidth=bw, bin_seeding=True).fit(x)
    ms = MeanShift(bandwidth=bw, kernel="flat", bin_seeding=True).fit(x)
    assert len(sk.cluster_centers_) > 1
    _assert_same_as_sklearn(sk, ms)


@pytest.mark.parametrize("name", ["circles", "moons"])
def test_flat_kernel_matches_sklearn_with_given_seeds(name):
    x = _data(name)
    seeds = x[::10]
    bw = sk_estimate_bandwidth(x, quantile=0.1)
    sk = SkMeanShift(bandwidth=bw, seeds=seeds).fit(x)
    ms = MeanShift(bandwidth=bw, kernel="flat", seeds=seeds).fit(x)
    _assert_same_as_sklearn(sk, ms)


def test_flat_kernel_matches_sklearn_with_every_point_a_seed():
    x = make_blobs(n_samples=300, centers=3, cluster_std=1.0, random_state=2)[0]
    sk = SkMeanShift(bandwidth=1.5).fit(x)
    ms = MeanShift(bandwidth=1.5, kernel="flat").fit(x)
    _assert_same_as_sklearn(sk, ms)


def test_orphans_get_minus_one_like_sklearn():
    x = np.concatenate([_data("blobs"), [[40.0, 40.0], [-40.0, 30.0]]])
    sk = SkMeanShift(bandwidth=1.5, bin_seeding=True, min_bin_freq=5, cluster_all=False).fit(x)
    ms = MeanShift(bandwidth=1.5, kernel="flat", bin_seeding=True, min_bin_freq=5,
                   cluster_all=False).fit(x)
    _assert_same_as_sklearn(sk, ms)
    assert ms.labels_[-1] == ms.labels_[-2] == -1


def test_bandwidth_estimated_when_not_given():
    x = _data("blobs")
    ms = MeanShift(kernel="flat", bin_seeding=True).fit(x)
    assert ms.bandwidth_ == pytest.approx(sk_estimate_bandwidth(x), rel=1e-10)
    _assert_same_as_sklearn(SkMeanShift(bin_seeding=True).fit(x), ms)


def test_blocking_does_not_change_the_result(monkeypatch):
    # Tiny blocks: many seed blocks, each with its own window of points.
    x = _data("moons")
    seeds = x[::7]
    ref = MeanShift(bandwidth=0.35, kernel="flat", seeds=seeds).fit(x)
    monkeypatch.setattr(meanshift_ascent, "_BLOCK_ELEMENTS", 4000)
    small = MeanShift(bandwidth=0.35, kernel="flat", seeds=seeds).fit(x)
    np.testing.assert_allclose(small.cluster_centers_, ref.cluster_centers_, atol=1e-12)
    np.testing.assert_array_equal(small.labels_, ref.labels_)


# ----------------------------------------------------------------------------- Gaussian kernel


def test_gaussian_kernel_recovers_the_seven_blobs():
    x, centres, truth = _seven_blobs()
    bw = 2.5
    assert cdist(centres, centres)[np.triu_indices(7, 1)].min() > 4 * bw  # resolvable
    ms = MeanShift(bandwidth=bw, kernel="gaussian").fit(x)
    assert ms.cluster_centers_.shape == (7, 2)
    dist = cdist(centres, ms.cluster_centers_)
    assert dist.min(1).max() < 0.5
    match = dist.argmin(1)  # true blob -> found mode
    assert len(set(match.tolist())) == 7
    assert np.mean(ms.labels_ == match[truth]) > 0.995


def test_path_records_every_step_and_frozen_seeds_stay():
    x, _, _ = _seven_blobs()
    ms = MeanShift(bandwidth=2.5, kernel="gaussian", bin_seeding=True, keep_path=True).fit(x)
    path = ms.path_
    assert path.ndim == 3 and path.shape[0] == ms.n_iter_ + 1 and path.shape[2] == 2
    assert not np.allclose(path[0], path[-1])
    moves = np.linalg.norm(np.diff(path, axis=0), axis=2)  # (n_iter, S)
    stopped = moves <= 1e-3 * 2.5
    first_stop = stopped.argmax(0)  # step at which each seed met the tolerance
    for s in range(path.shape[1]):
        assert np.all(moves[first_stop[s] + 1:, s] == 0)  # frozen afterwards
    # every mode reported is where some seed ended
    assert cdist(ms.cluster_centers_, path[-1]).min(1).max() < 1e-12
    assert MeanShift(bandwidth=2.5, bin_seeding=True).fit(x).path_ is None


def test_predict_is_nearest_mode():
    x, _, _ = _seven_blobs()
    ms = MeanShift(bandwidth=2.5, bin_seeding=True).fit(x)
    np.testing.assert_array_equal(ms.predict(x), ms.labels_)
    new = np.random.default_rng(0).uniform(-60, 60, size=(100, 2))
    np.testing.assert_array_equal(ms.predict(new), cdist(new, ms.cluster_centers_).argmin(1))


def test_float32_agrees_with_float64():
    x = _data("moons")
    a = MeanShift(bandwidth=0.35, kernel="flat", bin_seeding=True, dtype=torch.float32).fit(x)
    b = MeanShift(bandwidth=0.35, kernel="flat", bin_seeding=True).fit(x)
    assert a.cluster_centers_.shape == b.cluster_centers_.shape
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-3)
    assert np.mean(a.labels_ == b.labels_) > 0.999


# ----------------------------------------------------------------------------- warnings, errors


def test_warns_when_seeds_still_move_at_max_iter():
    x = _data("moons")
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        ms = MeanShift(bandwidth=0.35, kernel="flat", bin_seeding=True, max_iter=2).fit(x)
    assert ms.n_iter_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MeanShift(bandwidth=0.35, kernel="flat", bin_seeding=True).fit(x)


@pytest.mark.parametrize("kwargs, err, text", [
    ({"bandwidth": 0.0}, ValueError, "bandwidth"),
    ({"bandwidth": -1.0}, ValueError, "bandwidth"),
    ({"kernel": "epanechnikov"}, ValueError, "'epanechnikov'"),
    ({"min_bin_freq": 0}, ValueError, "min_bin_freq"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"cluster_all": "yes"}, TypeError, "cluster_all"),
])
def test_bad_options_are_named(kwargs, err, text):
    with pytest.raises(err, match=text):
        MeanShift(**kwargs)


def test_bad_inputs_are_named():
    x = _data("blobs")
    with pytest.raises(ValueError, match="quantile"):
        estimate_bandwidth(x, quantile=1.5)
    with pytest.raises(ValueError, match="seeds has 3 feature"):
        MeanShift(bandwidth=1.0, seeds=np.zeros((4, 3))).fit(x)
    with pytest.raises(ValueError, match="No point lies within"):
        MeanShift(bandwidth=1.0, kernel="flat", seeds=[[1e3, 1e3]]).fit(x)
    with pytest.raises(ValueError, match="min_bin_freq"):
        MeanShift(bandwidth=1.0, bin_seeding=True, min_bin_freq=10_000).fit(x)
    with pytest.raises(RuntimeError, match="not fitted"):
        MeanShift().predict(x)
    ms = MeanShift(bandwidth=1.0, bin_seeding=True).fit(x)
    with pytest.raises(ValueError, match="1 feature"):
        ms.predict(x[:, :1])


def test_quantile_sets_the_estimated_bandwidth():
    x = _data("moons")
    ms = MeanShift(quantile=0.1, kernel="flat", bin_seeding=True).fit(x)
    assert ms.bandwidth_ == pytest.approx(estimate_bandwidth(x, quantile=0.1), rel=1e-12)
    assert MeanShift().quantile == 0.3
    with pytest.raises(ValueError, match="quantile"):
        MeanShift(quantile=1.5)


def test_seed_is_accepted_and_has_no_effect():
    x = _data("moons")
    a = MeanShift(bandwidth=0.35, kernel="flat", seed=0).fit(x)
    b = MeanShift(bandwidth=0.35, kernel="flat", seed=123).fit(x)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
