"""Property tests (Hypothesis) over random shapes, scales and permutations.

* Fits are invariant to the order of the rows (up to label order).
* The MAP fit is equivariant to translating and scaling the data (the default prior is
  scaled to the data; the ridge ``reg_covar`` is in units of x², so it is scaled by c²).
* Every returned probability is finite and rows sum to 1, also far from the data.

Examples are derandomised, so CI runs the same cases every time.
"""

import warnings

import numpy as np
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import probmix

# No shrinking phase: a failure prints its (derandomised) example right away, and CI time
# stays bounded (shrinking a slow EM example can take minutes).
SETTINGS = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate])
COVARIANCES = ("full", "diag", "spherical", "tied")


@st.composite
def mixtures(draw):
    """(x, k, covariance): N rows from k well or badly separated blobs in D dimensions."""
    k = draw(st.integers(1, 3))
    d = draw(st.integers(1, 3))
    n = draw(st.integers(max(4, 2 * k), 30))
    seed = draw(st.integers(0, 2**32 - 1))
    spread = draw(st.sampled_from([0.5, 3.0, 10.0]))
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, spread, (k, d))
    x = centers[rng.integers(0, k, n)] + rng.normal(0, 1, (n, d))
    return x, k, draw(st.sampled_from(COVARIANCES))


def _fit(x, k, covariance, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        return probmix.fit(probmix.GaussianMixture(k, covariance=covariance), x, seed=0,
                           tol=1e-9, max_iter=40, **kw)


def _start(fit):
    return {"weights": fit.weights, "means": fit.means, "covariances": fit.params["covariances"]}


@SETTINGS
@given(mixtures(), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(case, random):
    x, k, covariance = case
    perm = np.array(random.sample(range(len(x)), len(x)))
    first = _fit(x, k, covariance)
    start = _start(first)  # one start for both orders: the initialisation is drawn per row
    a = _fit(x, k, covariance, init=start)
    b = _fit(x[perm], k, covariance, init=start)
    order = np.lexsort(a.means.T), np.lexsort(b.means.T)  # up to label order
    np.testing.assert_allclose(b.means[order[1]], a.means[order[0]], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(b.weights[order[1]], a.weights[order[0]], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(b.predict_proba(x)[:, order[1]], a.predict_proba(x)[:, order[0]],
                               atol=1e-7)
    km_a = probmix.KMeans(k, init=first.means).fit(x)
    km_b = probmix.KMeans(k, init=first.means).fit(x[perm])
    np.testing.assert_allclose(km_b.cluster_centers_, km_a.cluster_centers_, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_array_equal(km_b.labels_, km_a.labels_[perm])


@SETTINGS
@given(mixtures(), st.floats(-3, 3), st.floats(-1e3, 1e3), st.booleans())
def test_translation_and_scaling_move_the_fit_along(case, log_c, shift, flip):
    x, k, covariance = case
    c = 10.0**log_c * (-1 if flip else 1)  # a negative factor also reflects
    b = shift * np.linspace(1, -1, x.shape[1])  # a different shift per feature
    start = _start(_fit(x, k, covariance))
    base = _fit(x, k, covariance, reg_covar=1e-6, init=start)  # both from one start
    moved_start = {"weights": start["weights"], "means": start["means"] * c + b,
                   "covariances": start["covariances"] * c**2}
    moved = _fit(x * c + b, k, covariance, reg_covar=1e-6, init=moved_start)  # relative ridge
    scale = np.abs(x).max() + 1
    np.testing.assert_allclose(moved.weights, base.weights, atol=1e-6)
    np.testing.assert_allclose((moved.means - b) / c, base.means, atol=1e-6 * scale)
    np.testing.assert_allclose(moved.covariances / c**2, base.covariances,
                               atol=1e-6 * scale**2)
    np.testing.assert_allclose(moved.predict_proba(x * c + b), base.predict_proba(x), atol=1e-6)


@SETTINGS
@given(mixtures(), st.floats(0, 6), st.sampled_from(["map", "cavi"]))
def test_probabilities_are_finite_and_normalised(case, log_far, engine):
    x, k, covariance = case
    if engine == "cavi":
        fit = _quiet_cavi(x, k, covariance)
    else:
        fit = _fit(x, k, covariance)
    queries = np.concatenate([x, x * 10.0**log_far, -x * 10.0**log_far])  # also far away
    p = fit.predict_proba(queries)
    assert p.shape == (len(queries), k)
    assert np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    assert np.isfinite(fit.score_samples(x)).all()


def _quiet_cavi(x, k, covariance):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        return probmix.fit(probmix.GaussianMixture(k, covariance=covariance), x, engine="svi",
                           method="cavi", seed=0, num_draws=20)
