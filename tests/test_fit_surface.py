"""What a Fit offers a scientist beyond the engines (issue 19, issue 17 item 9): fitting on
standardised columns, drawing new data, and keeping and checking feature names."""

import numpy as np
import pandas as pd
import pytest

import probmix
from probmix.results.units import standardize_columns

SCALES = np.array([1.0, 1000.0])


@pytest.fixture(scope="module")
def data():
    x, source = probmix.three_clusters(200, seed=0)
    return x * SCALES, source


def test_standardize_is_a_fit_of_the_standardised_columns_in_the_data_units(data):
    x, _ = data
    model = probmix.GaussianMixture(3)
    f = probmix.fit(model, x, standardize=True, seed=0)
    z, center, sd = standardize_columns(x)
    g = probmix.fit(model, z, seed=0)
    np.testing.assert_allclose(f.means, center + g.means * sd, rtol=1e-10)
    np.testing.assert_allclose(f.covariances, g.covariances * np.outer(sd, sd), rtol=1e-10)
    np.testing.assert_array_equal(f.predict(x), g.predict(z))
    assert f.score(x) == pytest.approx(g.score(z) - np.log(sd).sum(), rel=1e-10)
    assert f.options["standardized"]["sd"] == pytest.approx(sd.tolist())


def test_standardize_refuses_a_custom_program(data):
    from tests.programs import two_locs

    with pytest.raises(TypeError, match="standardize"):
        probmix.fit(two_locs, data[0][:, :1], standardize=True)
    with pytest.raises(TypeError, match="standardize must be True or False; got 'yes'"):
        probmix.fit(probmix.GaussianMixture(2), data[0], standardize="yes")


def test_sample_draws_from_the_fitted_mixture(data):
    x, _ = data
    f = probmix.fit(probmix.GaussianMixture(3), x, seed=0)
    xs, labels = f.sample(30000, seed=1)
    assert xs.shape == (30000, 2) and np.all(np.diff(labels) >= 0)  # grouped, as sklearn's
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 30000, f.weights, atol=0.015)
    for k in range(3):
        part = xs[labels == k]
        se = np.sqrt(np.diag(f.covariances[k]) / len(part))
        assert np.all(np.abs(part.mean(0) - f.means[k]) < 5 * se)
        scale = np.sqrt(np.outer(np.diag(f.covariances[k]), np.diag(f.covariances[k])))
        assert np.all(np.abs(np.cov(part.T) - f.covariances[k]) / scale < 0.06)  # ~4 se
    again, _ = f.sample(30000, seed=1)
    np.testing.assert_array_equal(xs, again)
    with pytest.raises(ValueError, match="n must be a positive int"):
        f.sample(0)


@pytest.mark.parametrize("options", [dict(engine="svi", method="cavi"),
                                     dict(engine="mcmc", method="gibbs", num_samples=50,
                                          num_warmup=50, num_chains=1, progress=False)])
def test_sample_of_a_posterior_fit_follows_its_predictive(data, options):
    x, _ = data
    f = probmix.fit(probmix.GaussianMixture(3), x, seed=0, **options)
    xs, labels = f.sample(20000, seed=0)
    assert xs.shape == (20000, 2) and labels.max() <= 2
    # the predictive's mean is Σ_k E[w_k μ_k]: close to the data's mean
    tolerance = 5 * x.std(0) / np.sqrt(len(xs)) + 0.02 * x.std(0)
    assert np.all(np.abs(xs.mean(0) - x.mean(0)) < tolerance)
    # and its density is the one score_samples evaluates: the draws score like the data
    assert f.score(xs) == pytest.approx(f.score(x), abs=0.1)


def test_feature_names_are_kept_and_checked(data, tmp_path):
    x, _ = data
    df = pd.DataFrame(x, columns=["width", "mass"])
    f = probmix.fit(probmix.GaussianMixture(3), df, seed=0)
    assert f.feature_names == ["width", "mass"]
    np.testing.assert_array_equal(f.predict(df), f.predict(x))  # arrays are taken as they are
    reordered = r"another order.*\['width', 'mass'\].*\['mass', 'width'\]"
    with pytest.raises(ValueError, match=reordered):
        f.predict(df[["mass", "width"]])
    with pytest.raises(ValueError, match=r"lacks \['mass'\]"):
        f.score(df.rename(columns={"mass": "weight"}))
    f.save(tmp_path / "f.probmix")
    assert probmix.load(tmp_path / "f.probmix").feature_names == ["width", "mass"]
    assert probmix.fit(probmix.GaussianMixture(3), x, seed=0).feature_names is None
