"""probmix.sklearn: scikit-learn's own estimator checks, and agreement with scikit-learn's
GaussianMixture and BayesianGaussianMixture from the same start on the walkthrough's clusters."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from scipy.special import gammaln

import probmix
from probmix.sklearn import BayesianGaussianMixture, GaussianMixture, NotFittedError

sklearn_mixture = pytest.importorskip("sklearn.mixture")
from sklearn.base import clone  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

FAMILIES = ["full", "tied", "diag", "spherical"]

# --- 1. scikit-learn's estimator checks ---------------------------------------------------------

ESTIMATORS = [
    GaussianMixture(),
    *[GaussianMixture(n_components=2, covariance_type=c) for c in ("tied", "diag", "spherical")],
    BayesianGaussianMixture(),  # full covariance, Dirichlet-process weights
    # "spherical" shares the Gamma factor of "diag" (its shapes are tested below)
    *[BayesianGaussianMixture(n_components=2, covariance_type=c) for c in ("tied", "diag")],
    BayesianGaussianMixture(weight_concentration_prior_type="dirichlet_distribution",
                            init_params="k-means++", n_init=2),
    GaussianMixture(n_components=2, init_params="random_from_data", n_init=3),
]


# No check is expected to fail. check_array_api_input skips itself unless SCIPY_ARRAY_API=1 is
# set (probmix computes in torch, and does not declare array-API support).
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: {})
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)  # the checks' tiny data
        check(estimator)


# --- 2. GaussianMixture equals scikit-learn's from the same start -------------------------------

@pytest.fixture(scope="module")
def blobs():
    return probmix.three_clusters(200, seed=0)


def _start(covariance, d=2, k=3):
    """A poor start (shifted means, unit precisions): a long EM path to follow."""
    means = probmix.io.datasets.THREE_CLUSTERS["means"] + np.array([1.5, -1.0])
    prec = {"full": np.tile(np.eye(d), (k, 1, 1)), "tied": np.eye(d),
            "diag": np.ones((k, d)), "spherical": np.ones(k)}[covariance]
    return dict(weights_init=np.array([0.5, 0.3, 0.2]), means_init=means, precisions_init=prec)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # probmix's and scikit-learn's ConvergenceWarning
        return fn(*args, **kwargs)


ATTRIBUTES = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


@pytest.mark.parametrize("covariance", FAMILIES)
def test_gaussian_mixture_equals_sklearn_from_the_same_start(covariance, blobs):
    x, _ = blobs
    kw = dict(n_components=3, covariance_type=covariance, random_state=0, **_start(covariance))
    ours = GaussianMixture(**kw).fit(x)
    ref = sklearn_mixture.GaussianMixture(**kw).fit(x)
    assert ours.n_iter_ == ref.n_iter_ > 3 and ours.converged_ and ref.converged_
    for name in ATTRIBUTES:
        assert np.shape(getattr(ours, name)) == np.shape(getattr(ref, name)), name
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
    np.testing.assert_allclose(ours.score_samples(x), ref.score_samples(x), rtol=1e-9)
    np.testing.assert_allclose([ours.bic(x), ours.aic(x)], [ref.bic(x), ref.aic(x)], rtol=1e-10)


def test_warm_start_continues_like_sklearn(blobs):
    """Warm-started fits of 3 iterations take scikit-learn's path, and stop as it does (its
    first bound compared with the previous fit's lower_bound_)."""
    x, _ = blobs
    kw = dict(n_components=3, max_iter=3, warm_start=True, **_start("full"))
    ours, ref = GaussianMixture(**kw), sklearn_mixture.GaussianMixture(**kw)
    for _ in range(3):
        _quiet(ours.fit, x)
        _quiet(ref.fit, x)
        np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-9)
        np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-10)
        assert ours.n_iter_ == ref.n_iter_ and ours.converged_ == ref.converged_


def _match(ours_means, ref_means):
    """Index of our component closest to each of the reference's (a permutation)."""
    order = np.linalg.norm(ref_means[:, None] - ours_means[None], axis=-1).argmin(1)
    assert sorted(order) == list(range(len(order)))
    return order


@pytest.mark.parametrize("estimator", ["GaussianMixture", "BayesianGaussianMixture"])
def test_default_kmeans_start_gives_sklearns_solution(estimator, blobs):
    """The walkthrough as written (init_params="kmeans"): both k-means find the same three
    clusters (in their own order), so the fits agree up to that order."""
    x, _ = blobs
    kw = dict(n_components=3, random_state=0)
    if estimator == "BayesianGaussianMixture":
        kw["weight_concentration_prior_type"] = "dirichlet_distribution"
    ours = getattr(probmix.sklearn, estimator)(**kw).fit(x)
    ref = getattr(sklearn_mixture, estimator)(**kw).fit(x)
    order = _match(ours.means_, ref.means_)
    assert ours.n_iter_ == ref.n_iter_
    for name in ATTRIBUTES:
        np.testing.assert_allclose(getattr(ours, name)[order], getattr(ref, name), atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(ours.predict_proba(x)[:, order], ref.predict_proba(x), atol=1e-8)


# --- 3. BayesianGaussianMixture from the same responsibilities ----------------------------------

ALPHA, M0, BETA0, NU0 = 0.8, np.array([0.5, 0.2]), 0.7, 3.5
PSI0 = np.array([[2.0, 0.3], [0.3, 1.5]])


def _priors(covariance):
    psi = {"full": PSI0, "tied": PSI0, "diag": np.diag(PSI0),
           "spherical": np.trace(PSI0) / 2}[covariance]
    return dict(weight_concentration_prior=ALPHA, mean_prior=M0, mean_precision_prior=BETA0,
                degrees_of_freedom_prior=NU0, covariance_prior=psi)


class _SklearnGivenStart(sklearn_mixture.BayesianGaussianMixture):
    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self.resp_init)


class _OursGivenStart(BayesianGaussianMixture):
    def _start(self, x, seed):
        return torch.as_tensor(self.resp_init, dtype=x.dtype)[None]


def _both(resp, **kw):
    ours, ref = _OursGivenStart(**kw), _SklearnGivenStart(**kw)
    ours.resp_init = ref.resp_init = resp
    return ours, ref


@pytest.fixture(scope="module")
def resp0(blobs):
    return np.random.default_rng(0).dirichlet(np.ones(3), size=len(blobs[0]))


def _elbo_constant(k, n, d):
    """Full ELBO minus scikit-learn's lower bound (full covariance, Dirichlet weights)."""
    wishart = (NU0 / 2 * np.linalg.slogdet(PSI0)[1] - NU0 * d / 2 * np.log(2)
               - sum(gammaln((NU0 - i) / 2) for i in range(d)) + d / 2 * np.log(BETA0))
    return gammaln(k * ALPHA) - k * gammaln(ALPHA) + k * wishart - n * d / 2 * np.log(2 * np.pi)


VARIATIONAL = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
               "mean_precision_", "degrees_of_freedom_")


@pytest.mark.parametrize("reg_covar", [0.0, 0.05])
def test_bayesian_full_dirichlet_equals_sklearn_from_the_same_start(reg_covar, blobs, resp0):
    """Identical updates (scikit-learn's reg_covar included): parameters to rounding, and
    (without the ridge, where q is the exact coordinate optimum that scikit-learn's simplified
    bound assumes) the ELBO is scikit-learn's lower bound plus the constants it drops."""
    x, _ = blobs
    ours, ref = _both(resp0, n_components=3, weight_concentration_prior_type=
                      "dirichlet_distribution", max_iter=300, reg_covar=reg_covar,
                      **_priors("full"))
    _quiet(ours.fit, x)
    _quiet(ref.fit, x)
    assert ours.n_iter_ == ref.n_iter_ > 10 and ours.converged_ == ref.converged_
    for name in (*VARIATIONAL, "weight_concentration_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-8,
                                   atol=1e-9, err_msg=name)
    for name in ("weight_concentration_prior_", "mean_precision_prior_", "mean_prior_",
                 "degrees_of_freedom_prior_", "covariance_prior_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-12)
    n, d = x.shape
    if reg_covar == 0:
        np.testing.assert_allclose(ours.lower_bound_ - ref.lower_bound_,
                                   _elbo_constant(3, n, d), atol=1e-7)
    np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=1e-9)
    np.testing.assert_allclose(ours.score_samples(x), ref.score_samples(x), rtol=1e-9)


@pytest.mark.parametrize("covariance, weights, rtol", [
    ("diag", "dirichlet_distribution", 1e-3), ("spherical", "dirichlet_distribution", 1e-3),
    ("full", "dirichlet_process", 1e-2), ("tied", "dirichlet_distribution", 2e-2),
])
def test_bayesian_exact_updates_stay_close_to_sklearn(covariance, weights, rtol, blobs, resp0):
    """Where probmix runs the exact mean-field update and scikit-learn does not (see
    probmix.infer.vi.cavi), the fits differ, but only slightly on separated clusters; the
    q(means, precisions) update itself is the same for diag and spherical."""
    x, _ = blobs
    ours, ref = _both(resp0, n_components=3, covariance_type=covariance, max_iter=300,
                      weight_concentration_prior_type=weights, **_priors(covariance))
    _quiet(ours.fit, x)
    _quiet(ref.fit, x)
    assert ours.converged_ and ref.converged_
    for name in ("weights_", "means_", "covariances_"):
        assert np.shape(getattr(ours, name)) == np.shape(getattr(ref, name))
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=rtol,
                                   atol=rtol, err_msg=name)
    assert np.mean(ours.predict(x) == ref.predict(x)) > 0.99
    if covariance == "tied":  # the exact shared-precision update counts every row once
        assert ours.degrees_of_freedom_ == pytest.approx(NU0 + len(x))
        assert ref.degrees_of_freedom_ == pytest.approx(NU0 + len(x) / 3)
    if weights == "dirichlet_process":  # K - 1 sticks here, K in scikit-learn
        assert [np.shape(c) for c in ours.weight_concentration_] == [(2,), (2,)]
        np.testing.assert_allclose(ours.weight_concentration_[0], ref.weight_concentration_[0][:2],
                                   rtol=1e-2)


@pytest.mark.parametrize("covariance", FAMILIES)
def test_fitted_attributes_have_sklearns_shapes(covariance, blobs):
    x, _ = blobs
    names = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
             "mean_precision_", "degrees_of_freedom_", "weight_concentration_", "mean_prior_",
             "covariance_prior_", "degrees_of_freedom_prior_", "mean_precision_prior_",
             "weight_concentration_prior_", "n_features_in_", "n_iter_")
    kw = dict(n_components=3, covariance_type=covariance, random_state=0,
              weight_concentration_prior_type="dirichlet_distribution")
    ours = _quiet(BayesianGaussianMixture(**kw).fit, x)
    ref = _quiet(sklearn_mixture.BayesianGaussianMixture(**kw).fit, x)
    for name in names:
        assert np.shape(getattr(ours, name)) == np.shape(np.asarray(getattr(ref, name))), name
    assert isinstance(ours.lower_bound_, float)  # scikit-learn's tied one is a (1,) array
    # the probmix fit behind it carries the variational posterior's draws
    assert ours.result_.draws["means"].shape == (1, 1000, 3, 2)


# --- 4. sampling, random_state, errors, the scikit-learn-free fallback --------------------------

def test_sample_returns_sorted_labels_and_follows_the_fit(blobs):
    x, _ = blobs
    gm = GaussianMixture(3, random_state=0).fit(x)
    xs, ys = gm.sample(30_000)
    assert xs.shape == (30_000, 2) and ys.shape == (30_000,) and np.all(np.diff(ys) >= 0)
    np.testing.assert_array_equal(gm.sample(5)[0], gm.sample(5)[0])  # an int seed repeats
    counts = np.bincount(ys, minlength=3) / len(ys)
    assert np.all(np.abs(counts - gm.weights_) < 5 * np.sqrt(gm.weights_ / len(ys)))
    for k in range(3):
        part = xs[ys == k]
        se = np.sqrt(np.diag(gm.covariances_[k]) / len(part))
        assert np.all(np.abs(part.mean(0) - gm.means_[k]) < 5 * se)
        np.testing.assert_allclose(np.cov(part.T), gm.covariances_[k], atol=0.1)
    with pytest.raises(ValueError, match="n_samples"):
        gm.sample(0)


def test_random_state_forms(blobs):
    x, _ = blobs
    kw = dict(n_components=3, init_params="random", max_iter=2)
    a = _quiet(GaussianMixture(random_state=np.random.RandomState(1), **kw).fit, x)
    b = _quiet(GaussianMixture(random_state=np.random.RandomState(1), **kw).fit, x)
    np.testing.assert_array_equal(a.means_, b.means_)
    c = _quiet(GaussianMixture(random_state=None, **kw).fit, x)
    assert not np.array_equal(a.means_, c.means_)
    with pytest.raises(TypeError, match="random_state"):
        GaussianMixture(random_state="0").fit(x)


@pytest.mark.parametrize("estimator, params, match", [
    (GaussianMixture, dict(covariance_type="full-ish"), "covariance_type"),
    (GaussianMixture, dict(n_components=3, means_init=np.zeros((2, 2))), r"means_init.*\(3, 2\)"),
    (GaussianMixture, dict(init_params="kmeans+"), "init_params"),
    (BayesianGaussianMixture, dict(covariance_type="diag", covariance_prior=np.eye(2)),
     r"covariance_prior.*\(2,\)"),
    (BayesianGaussianMixture, dict(weight_concentration_prior_type="dp"),
     "weight_concentration_prior_type"),
    (BayesianGaussianMixture, dict(degrees_of_freedom_prior=0.5), "degrees_of_freedom_prior"),
])
def test_bad_options_name_the_option(estimator, params, match, blobs):
    with pytest.raises(ValueError, match=match):
        estimator(**params).fit(blobs[0])


def test_unfitted_and_wrong_width(blobs):
    x, _ = blobs
    gm = GaussianMixture()
    with pytest.raises(NotFittedError):
        gm.predict(x)
    assert isinstance(NotFittedError("e"), ValueError) and isinstance(NotFittedError("e"),
                                                                     AttributeError)
    gm.fit(x)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        gm.predict(np.ones((4, 3)))
    assert clone(gm).get_params() == gm.get_params()


_FALLBACK = r"""
import sys, warnings
sys.modules["sklearn"] = None  # scikit-learn is not installed
import numpy as np, probmix
from probmix.sklearn import GaussianMixture, BayesianGaussianMixture, NotFittedError
from probmix.sklearn._base import HAVE_SKLEARN
assert not HAVE_SKLEARN
gm = GaussianMixture(n_components=3, covariance_type="diag", random_state=0)
assert gm.get_params()["covariance_type"] == "diag" and gm.get_params()["device"] is None
assert repr(gm) == "GaussianMixture(covariance_type='diag', n_components=3, random_state=0)"
assert gm.set_params(tol=1e-4) is gm and gm.tol == 1e-4
try:
    gm.set_params(nope=1)
    raise SystemExit("set_params accepted an unknown name")
except ValueError as err:
    assert "nope" in str(err)
try:
    gm.predict(np.zeros((2, 2)))
    raise SystemExit("predict before fit")
except NotFittedError as err:
    assert isinstance(err, (ValueError, AttributeError))
x, source = probmix.three_clusters(100, seed=0)
print(gm.fit(x).predict(x)[:3], gm.bic(x) > 0)
"""


def test_works_without_sklearn():
    """scikit-learn is optional: the estimators keep the get_params/set_params contract."""
    out = subprocess.run([sys.executable, "-c", _FALLBACK], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "True" in out.stdout


def test_bayesian_warm_start_continues_like_sklearn(blobs, resp0):
    x, _ = blobs
    ours, ref = _both(resp0, n_components=3, weight_concentration_prior_type=
                      "dirichlet_distribution", max_iter=4, warm_start=True, **_priors("full"))
    for _ in range(3):
        _quiet(ours.fit, x)
        _quiet(ref.fit, x)
        np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-9)
        assert ours.n_iter_ == ref.n_iter_ and ours.converged_ == ref.converged_
