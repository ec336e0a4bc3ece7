"""Hostile and degenerate input: a clear error or a correct answer, never a crash or garbage.

Each case runs against ``probmix.as_data``, the MAP engine, KMeans and MeanShift.
"""

import warnings

import numpy as np
import pytest
import torch

import probmix

RNG = np.random.default_rng(0)
BASE = np.concatenate([RNG.normal(0, 1, (30, 2)), RNG.normal(6, 1, (30, 2))])  # two clusters
TRUTH = np.repeat([0, 1], 30)


def _map(x):
    return probmix.fit(probmix.GaussianMixture(2), x, seed=0)


TARGETS = {
    "as_data": probmix.as_data,
    "map": _map,
    "kmeans": lambda x: probmix.KMeans(2, seed=0).fit(x),
    "meanshift": lambda x: probmix.MeanShift(seed=0).fit(x),
}

# case -> (input, exception type, words the message must contain)
ERRORS = {
    "nan": (np.where(np.arange(60)[:, None] == 7, np.nan, BASE), ValueError, "row 7"),
    "inf": (np.where(np.arange(60)[:, None] == 3, np.inf, BASE), ValueError, "1 of 60 rows"),
    "strings": ([["1.0", "a"], ["2", "b"]], TypeError, "strings"),
    "objects": (np.array([[1.0, "x"], [2.0, 3.0]], dtype=object), TypeError, "'x'"),
    "complex": (BASE + 1j, TypeError, "complex"),
    "complex tensor": (torch.tensor(BASE + 1j), TypeError, "complex"),
    "0 rows": (np.zeros((0, 2)), ValueError, "empty"),
    "D = 0": (np.zeros((5, 0)), ValueError, "no features"),
    "ragged": ([[1.0, 2.0], [3.0]], ValueError, "rectangular"),
    "3-D": (np.zeros((4, 3, 2)), ValueError, "2-D"),
    "1-D": (np.zeros(4), ValueError, "reshape"),
    "meta tensor": (torch.ones(5, 2, device="meta"), ValueError, "meta"),
    "None": (None, TypeError, "got None"),
    "scalar": (3.5, ValueError, "single number"),
}


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_gets_a_clear_error(case, target):
    x, kind, words = ERRORS[case]
    with pytest.raises(kind) as info:
        TARGETS[target](x)
    assert words in str(info.value) and "x" in str(info.value)


@pytest.mark.parametrize("target", ["map", "kmeans"])
def test_fewer_rows_than_components(target):
    with pytest.raises(ValueError, match="2"):
        TARGETS[target](BASE[:1])  # N = 1 < K = 2
    with pytest.raises(ValueError, match="3"):
        (probmix.KMeans(3) .fit if target == "kmeans" else
         lambda x: probmix.fit(probmix.GaussianMixture(3), x))(BASE[:2])


def test_one_row_is_a_valid_one_component_fit():
    x = np.array([[1.5, -2.0]])
    fit = probmix.fit(probmix.GaussianMixture(1), x)
    np.testing.assert_allclose(fit.means, x)
    assert np.isfinite(fit.covariances).all() and np.linalg.eigvalsh(fit.covariances).min() > 0
    assert probmix.KMeans(1).fit(x).inertia_ == 0.0
    assert probmix.MeanShift(bandwidth=1.0).fit(x).cluster_centers_.tolist() == x.tolist()


def _labels_match(labels):
    return max((labels == TRUTH).mean(), (labels != TRUTH).mean()) == 1.0


EQUIVALENT = {  # inputs that hold the same numbers as BASE (or BASE rounded) in another form
    "float16": BASE.astype(np.float16),
    "float32 tensor": torch.tensor(BASE, dtype=torch.float32),
    "integer": np.round(BASE).astype(np.int64),
    "Fortran order": np.asfortranarray(BASE),
    "non-contiguous": np.repeat(BASE, 2, axis=1)[::1, ::2],
    "list of lists": BASE.tolist(),
    "object of numbers": BASE.astype(object),
    "tensor with grad": torch.tensor(BASE, requires_grad=True),
}


@pytest.mark.parametrize("case", list(EQUIVALENT))
def test_other_numeric_forms_give_the_same_clusters(case):
    x = EQUIVALENT[case]
    values = np.asarray(x.detach() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    t = probmix.as_data(x)
    assert t.dtype == torch.float64 and t.is_contiguous() and t.shape == (60, 2)
    np.testing.assert_array_equal(t.numpy(), values)
    fit = _map(x)
    assert fit.dtype == "float64" and _labels_match(fit.predict(values))
    reference = _map(values)
    np.testing.assert_allclose(fit.means, reference.means, rtol=1e-12)
    assert _labels_match(probmix.KMeans(2, seed=0).fit(x).labels_)
    assert _labels_match(probmix.MeanShift(seed=0).fit(x).labels_)


@pytest.mark.parametrize("factor", [1e150, 1e-150])
def test_huge_and_tiny_magnitudes_fit_correctly(factor):
    """Equivariance: x · c gives means · c and covariances · c² (the ridge is relative to
    each feature's variance, so it scales with c² by itself)."""
    base = _map(BASE)
    fit = probmix.fit(probmix.GaussianMixture(2), BASE * factor, seed=0)
    np.testing.assert_allclose(fit.means / factor, base.means, rtol=1e-9)
    np.testing.assert_allclose(fit.covariances / factor**2, base.covariances, rtol=1e-9)
    np.testing.assert_allclose(fit.predict_proba(BASE * factor), base.predict_proba(BASE),
                               atol=1e-12)
    km = probmix.KMeans(2, seed=0).fit(BASE * factor)
    np.testing.assert_allclose(km.cluster_centers_ / factor,
                               probmix.KMeans(2, seed=0).fit(BASE).cluster_centers_, rtol=1e-9)
    ms = probmix.MeanShift(seed=0).fit(BASE * factor)
    assert _labels_match(ms.labels_)


def test_a_ridge_that_swamps_tiny_data_is_reported():
    # the default ridge is relative to each feature's variance: tiny data fit (test above);
    # an absolute ridge larger than the data's variance is reported
    with pytest.warns(UserWarning, match="reg_covar=1e-06 is at least the variance"):
        probmix.fit(probmix.GaussianMixture(2), BASE * 1e-150, seed=0,
                    reg_covar_relative=False)
    with pytest.warns(UserWarning, match="reg_covar=2 adds at least each feature's variance"):
        probmix.fit(probmix.GaussianMixture(2), BASE, seed=0, reg_covar=2.0)


def test_squares_that_overflow_get_a_rescaling_advice():
    with pytest.raises(ValueError, match="overflows torch.float64.*Rescale x"):
        _map(BASE * 1e160)
    with pytest.raises(ValueError, match="overflows"):
        probmix.fit(probmix.GaussianMixture(2, prior="flat"), BASE * 1e160)
    # distances only: the baselines work in a centred frame and cope
    assert _labels_match(probmix.KMeans(2, seed=0).fit(BASE * 1e160).labels_)


def test_all_identical_points():
    x = np.full((20, 2), 3.0)
    one = probmix.fit(probmix.GaussianMixture(1, prior="flat"), x)
    np.testing.assert_allclose(one.means, [[3.0, 3.0]])
    np.testing.assert_allclose(one.covariances, [1e-6 * np.eye(2)], rtol=1e-9)  # the ridge
    with pytest.raises(probmix.DegenerateCovarianceError, match="reg_covar"):
        probmix.fit(probmix.GaussianMixture(1, prior="flat"), x, reg_covar=0.0)
    with pytest.warns(probmix.ConvergenceWarning, match="only 1 distinct row"):
        fit = _map(x)
    assert np.isfinite(fit.predict_proba(x)).all()
    with pytest.warns(probmix.ConvergenceWarning, match="1 distinct cluster"):
        assert probmix.KMeans(2, seed=0).fit(x).inertia_ == 0.0
    with pytest.raises(ValueError, match="bandwidth"):
        probmix.MeanShift().fit(x)
    assert probmix.MeanShift(bandwidth=1.0).fit(x).cluster_centers_.tolist() == [[3.0, 3.0]]


def test_zero_variance_feature():
    x = np.c_[BASE[:, :1], np.full(60, 4.0)]
    for prior in ("default", "flat"):
        fit = probmix.fit(probmix.GaussianMixture(2, prior=prior), x, seed=0)
        np.testing.assert_allclose(fit.means[:, 1], 4.0, rtol=1e-12)
        assert np.linalg.eigvalsh(fit.covariances).min() > 0
        p = fit.predict_proba(x)
        assert np.isfinite(p).all() and _labels_match(p.argmax(1))
    flat = probmix.fit(probmix.GaussianMixture(2, prior="flat"), x, seed=0)
    # the ridge alone: 1e-6 of a variance, the other feature's for a constant one
    np.testing.assert_allclose(flat.covariances[:, 1, 1], 1e-6 * BASE[:, 0].var(), rtol=1e-6)
    assert _labels_match(probmix.KMeans(2, seed=0).fit(x).labels_)
    assert _labels_match(probmix.MeanShift(seed=0).fit(x).labels_)


def test_duplicated_points_count_as_weights():
    """Each distinct row repeated r times is the same fit as sample_weight r (EM and KMeans)."""
    x = BASE[::3]
    r = 4
    dup = probmix.fit(probmix.GaussianMixture(2, prior="flat"), np.repeat(x, r, axis=0),
                      seed=0, tol=1e-10)
    weighted = probmix.fit(probmix.GaussianMixture(2, prior="flat"), x, seed=0, tol=1e-10,
                           sample_weight=np.full(len(x), float(r)))
    order = np.argsort(dup.means[:, 0]), np.argsort(weighted.means[:, 0])
    np.testing.assert_allclose(dup.means[order[0]], weighted.means[order[1]], rtol=1e-6)
    km = probmix.KMeans(2, seed=0).fit(np.repeat(x, r, axis=0))
    assert _labels_match(km.predict(BASE))


def test_data_on_another_device_than_requested():
    t = torch.tensor(BASE)
    assert probmix.as_data(t, device="cpu", dtype=torch.float32).dtype == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            probmix.as_data(t, device="cuda")
        with pytest.raises(ValueError, match="no CUDA"):
            probmix.fit(probmix.GaussianMixture(2), BASE, device="cuda")
        return
    on_gpu = probmix.as_data(t, device="cuda")  # host data moved to the requested GPU
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
    back = probmix.as_data(on_gpu, device="cpu")  # GPU data moved back
    assert back.device.type == "cpu" and back.dtype == torch.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        gpu_fit = probmix.fit(probmix.GaussianMixture(2), t, device="cuda", seed=0)
    np.testing.assert_allclose(gpu_fit.means, _map(BASE).means, rtol=1e-4)
    assert _labels_match(gpu_fit.predict(on_gpu))  # a GPU tensor to a GPU fit
    assert _labels_match(_map(BASE).predict(on_gpu))  # a GPU tensor to a CPU fit
