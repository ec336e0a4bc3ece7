"""What a user gets from EM with no options (issue 16): stopping at the mode, a prior that
regularises without distorting, and estimates that follow any rescaling of the data."""

import warnings

import numpy as np
import pytest

import probmix
from probmix.model.covariance import MCLUST_MODELS


def _fit(model, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return probmix.fit(model, x, engine="map", seed=0, **kw)


def _aligned(fit, means):
    """fit's means and covariances in the component order of ``means`` (nearest match)."""
    from scipy.optimize import linear_sum_assignment

    cost = ((fit.means[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    order = rows[np.argsort(cols)]
    return fit.means[order], fit.covariances[order]


def _overlapping_pair(n=300, seed=0):
    rng = np.random.default_rng(seed)
    first = rng.random(n) < 0.6
    return np.where(first, rng.normal(0.0, 1.0, n), rng.normal(2.2, 0.6, n))[:, None]


@pytest.mark.parametrize("prior", ["default", "flat"])
def test_default_stopping_reaches_the_mode_of_an_overlapping_pair(prior):
    x = _overlapping_pair()
    model = probmix.GaussianMixture(2, covariance="full", prior=prior)
    fit = _fit(model, x)
    # the mode itself: the same start, iterated until the objective stops moving at all
    mode = _fit(model, x, init={k: fit.params[k] for k in ("weights", "means", "covariances")},
                stop="change", tol=1e-15, max_iter=20000)
    gap = (mode.lower_bounds[-1] - fit.lower_bounds[-1]) * len(x)  # nats
    assert fit.converged
    assert gap < 1e-3, gap
    # scikit-learn's rule (change of the mean log-likelihood < 1e-3) stops far from it
    early = _fit(model, x, stop="change", tol=1e-3)
    assert (mode.lower_bounds[-1] - early.lower_bounds[-1]) * len(x) > 10 * gap


def test_default_prior_keeps_a_tight_clusters_covariance_within_ten_percent():
    x, _ = probmix.three_clusters(200, seed=0)  # 200 points per component
    ml = _fit(probmix.GaussianMixture(3, prior="flat"), x)
    mp = _fit(probmix.GaussianMixture(3), x)
    order = [int(np.argmin(((mp.means - m) ** 2).sum(1))) for m in ml.means]
    ratio = (np.diagonal(mp.covariances[order], axis1=1, axis2=2)
             / np.diagonal(ml.covariances, axis1=1, axis2=2))
    assert np.all(np.abs(ratio - 1) < 0.10), ratio  # was +69% with the old default


@pytest.mark.parametrize("covariance", ["diag", "spherical", "full"])
def test_default_prior_neither_shrinks_nor_inflates_in_50_dimensions(covariance):
    rng = np.random.default_rng(1)
    d, n = 50, 100
    centers = np.zeros((2, d))
    centers[1, 0] = 12.0
    x = np.concatenate([rng.normal(size=(n, d)) + c for c in centers])  # unit variances
    fit = _fit(probmix.GaussianMixture(2, covariance=covariance), x)
    variances = np.diagonal(fit.covariances, axis1=1, axis2=2)
    assert abs(variances.mean() - 1) < 0.1, variances.mean()  # was 0.73 for diag/spherical


@pytest.mark.parametrize("covariance", MCLUST_MODELS)
def test_map_follows_an_affine_change_of_units(covariance):
    """x' = a x + b, for a = 1e-3 and 1e3: means and covariances follow, likelihood too."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(size=(60, 2)) @ np.array([[1.0, 0.3], [0.0, 0.5]]) + c
                        for c in ([0, 0], [4, 1], [-1, 5])])
    model = probmix.GaussianMixture(3, covariance=covariance)
    base = _fit(model, x)
    for a, b in ((1e-3, np.array([5.0, -2.0])), (1e3, np.array([0.0, 1e4]))):
        moved = _fit(model, a * x + b)
        means, covariances = _aligned(moved, a * base.means + b)
        np.testing.assert_allclose(means, a * base.means + b, rtol=1e-6, atol=1e-6 * a)
        np.testing.assert_allclose(covariances, a**2 * base.covariances, rtol=1e-6,
                                   atol=1e-8 * a**2)
        assert moved.score(a * x + b) == pytest.approx(base.score(x) - 2 * np.log(a), rel=1e-9)


@pytest.mark.parametrize("covariance", ["VVV", "VVI", "EEE", "EEI", "VEI", "EVI", "VEE", "EVV"])
def test_map_follows_a_different_scale_for_each_feature(covariance):
    """Families closed under S Σ S (S diagonal): with the hierarchical start (computed on
    standardised columns), the relative ridge and the data-scaled prior, the mode follows a
    different rescaling of each feature (compared at the mode: tol=1e-13)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(size=(60, 2)) + c for c in ([0, 0], [4, 1], [-1, 5])])
    scale = np.array([1e-2, 10.0])  # (EM standardises by one scalar: far larger ratios
    # leave one feature at the rounding level of the other, issue 17 item 10)
    model = probmix.GaussianMixture(3, covariance=covariance)
    base = _fit(model, x, init="hc", tol=1e-13, max_iter=5000)  # the mode itself
    moved = _fit(model, x * scale, init="hc", tol=1e-13, max_iter=5000)
    means, covariances = _aligned(moved, base.means * scale)
    np.testing.assert_allclose(means, base.means * scale, rtol=1e-6)
    np.testing.assert_allclose(covariances, base.covariances * np.outer(scale, scale),
                               rtol=1e-5, atol=1e-9 * np.outer(scale, scale).max())


def test_reg_covar_is_relative_to_each_features_variance():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 2)) * [1e-3, 1.0]
    model = probmix.GaussianMixture(1, covariance="diag", prior="flat")
    relative = _fit(model, x, reg_covar=0.1)
    absolute = _fit(model, x, reg_covar=0.1, reg_covar_relative=False)
    var = x.var(0)
    np.testing.assert_allclose(np.diag(relative.covariances[0]), 1.1 * var, rtol=1e-9)
    np.testing.assert_allclose(np.diag(absolute.covariances[0]), var + 0.1, rtol=1e-9)
