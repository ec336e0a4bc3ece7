"""The SVI engine: agreement with MAP and CAVI, posterior scaling, mini-batches, determinism."""

import warnings

import numpy as np
import pyro
import pytest
import torch

import probmix
from programs import two_locs
from probmix.io.datasets import three_clusters

MODEL = probmix.GaussianMixture(3)


def _svi(x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        return probmix.fit(MODEL, x, engine="svi", seed=0, progress=False, **kw)


@pytest.fixture(scope="module")
def walkthrough():
    x, source = three_clusters(1000, seed=0)  # the walkthrough: 3 × 1000 points
    return x, probmix.fit(MODEL, x, seed=0), _svi(x)


def test_posterior_means_agree_with_map(walkthrough):
    x, map_fit, fit = walkthrough
    assert fit.engine == "svi" and fit.converged
    np.testing.assert_allclose(fit.means, map_fit.means, atol=0.05)
    np.testing.assert_allclose(fit.weights, map_fit.weights, atol=0.02)
    assert fit.draws["means"].shape == (1, 1000, 3, 2)
    assert fit.draws["covariances"].shape == (1, 1000, 3, 2, 2)
    np.testing.assert_allclose(fit.predict_proba(x).sum(1), 1.0)


def test_posterior_sd_shrinks_as_one_over_sqrt_n(walkthrough):
    x_small, _ = three_clusters(250, seed=0)
    small = _svi(x_small)
    large = walkthrough[2]
    # the same cluster in both fits: components ordered by the first coordinate of their mean
    sd_large = large.draws["means"].std(axis=(0, 1))[np.argsort(large.means[:, 0])]
    sd_small = small.draws["means"].std(axis=(0, 1))[np.argsort(small.means[:, 0])]
    ratio = sd_small / sd_large  # N grew 4x: expect 2
    assert np.all((ratio > 1.5) & (ratio < 2.6)), ratio


def test_elbo_within_a_few_nats_of_cavi(walkthrough):
    x, _, fit = walkthrough
    cavi = probmix.fit(MODEL, x, engine="svi", method="cavi", seed=0)
    # different variational families (CAVI's Normal-Wishart, SVI's guide): measured 0.97
    # nats apart on these 3000 points
    assert abs(fit.options["elbo"] - cavi.options["elbo"]) < 5.0
    np.testing.assert_allclose(fit.means, cavi.means, atol=0.05)


def test_mini_batches_reach_the_full_batch_solution(walkthrough):
    x, _, full = walkthrough
    mini = _svi(x, batch_size=300, steps=3000)
    assert mini.options["batch_size"] == 300
    np.testing.assert_allclose(mini.means, full.means, atol=0.06)  # stated tolerance
    # the same cluster in both: components ordered by the first coordinate of their mean
    sd_full = full.draws["means"].std(axis=(0, 1))[np.argsort(full.means[:, 0])]
    sd_mini = mini.draws["means"].std(axis=(0, 1))[np.argsort(mini.means[:, 0])]
    np.testing.assert_allclose(sd_mini, sd_full, rtol=0.25)  # measured 0.93-1.17


def test_same_seed_same_result_and_no_shared_state():
    x, _ = three_clusters(100, seed=3)
    a = _svi(x, steps=150)
    b = _svi(x, steps=150)
    for name in a.draws:
        np.testing.assert_array_equal(a.draws[name], b.draws[name])
    np.testing.assert_array_equal(a.losses, b.losses)
    assert len(pyro.get_param_store()) == 0
    c = probmix.fit(MODEL, x, engine="svi", seed=1, steps=150, progress=False)
    assert not np.array_equal(a.draws["means"], c.draws["means"])


def test_to_arviz_groups_and_summary(walkthrough):
    x, _, fit = walkthrough
    tree = fit.to_arviz()
    assert tree["posterior"]["means"].dims == ("chain", "draw", "component", "feature")
    assert tree["log_likelihood"]["obs"].shape == (1, 1000, len(x))
    assert tree["observed_data"]["obs"].shape == x.shape
    stochastic = _svi(x[:300], guide="normal", steps=100)  # the default has no steps
    assert stochastic.to_arviz(log_likelihood=False)["sample_stats"]["loss"].shape[-1] == 100
    table = fit.summary()
    assert {"mean", "sd", "ess_bulk", "r_hat"} <= set(table.columns)
    assert table.loc["means[0, 0]", "mean"] == pytest.approx(fit.means[0, 0], abs=1e-2)


def test_posterior_predictive_density_averages_the_draws(walkthrough):
    x, _, fit = walkthrough
    ll = fit.pointwise_log_likelihood(x[:50])  # (1, S, 50)
    expected = np.log(np.exp(ll).mean(axis=(0, 1)))
    np.testing.assert_allclose(fit.score_samples(x[:50]), expected, rtol=1e-10)


def test_guides_and_init_options():
    x, _ = three_clusters(100, seed=1)
    delta = _svi(x, guide="delta", steps=200)
    assert np.ptp(delta.draws["means"], axis=(0, 1)).max() == 0.0  # a point mass
    mvn = _svi(x, guide="mvn", steps=200)
    assert mvn.draws["means"].std(axis=(0, 1)).min() > 0
    prior = _svi(x, init="prior", steps=200)
    assert prior.options["init"] == "prior"


def test_dirichlet_process_weights_switch_components_off():
    x, _ = three_clusters(200, seed=0)
    model = probmix.GaussianMixture(6, weights_prior="dirichlet_process",
                                    prior=probmix.Prior(weight_concentration=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        fit = probmix.fit(model, x, engine="svi", seed=0, steps=800, progress=False)
    assert "sticks" not in fit.draws and fit.draws["weights"].shape == (1, 1000, 6)
    assert np.sort(fit.weights)[-3:].sum() > 0.95


def test_custom_program():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 1, 150), rng.normal(3, 1, 150)])[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        fit = probmix.fit(two_locs, x, engine="svi", seed=0, steps=600, progress=False)
    locs = np.sort(fit.params["locs"])
    np.testing.assert_allclose(locs, [-3, 3], atol=0.3)
    assert fit.draws["locs"].shape == (1, 1000, 2)
    np.testing.assert_allclose(fit.predict_proba(x).sum(1), 1.0)


@pytest.mark.parametrize("engine", ["map", "svi"])
def test_a_given_start_is_not_modified(engine):
    """The optimiser updates its parameters in place; they must not alias the caller's init."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 1, 30), rng.normal(3, 1, 30)])[:, None]
    start = {"weights": np.array([0.5, 0.5]), "scale": np.array(1.5), "locs": np.array([-1.0, 1.0])}
    kept = {n: v.copy() for n, v in start.items()}
    options = {"steps": 20, "lr": 0.1, "num_draws": 5, "progress": False} if engine == "svi" \
        else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        fit = probmix.fit(two_locs, x, engine=engine, init=start, seed=0, **options)
    assert np.abs(np.sort(fit.params["locs"]) - kept["locs"]).max() > 0.1  # it did move
    for name in start:
        np.testing.assert_array_equal(start[name], kept[name], err_msg=name)


@pytest.mark.parametrize("kw, match", [
    ({"guide": "iaf"}, "guide must be one of"),
    ({"init": "kmeans"}, "init must be"),
    ({"steps": 0}, "steps"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_options(kw, match):
    x, _ = three_clusters(20, seed=0)
    with pytest.raises(ValueError, match=match):
        probmix.fit(MODEL, x, engine="svi", progress=False, **kw)


def test_user_guide():
    from pyro import poutine
    from pyro.infer.autoguide import AutoDiagonalNormal

    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-3, 1, 100), rng.normal(3, 1, 100)])[:, None]
    from pyro.infer.autoguide.initialization import init_to_value

    start = init_to_value(values={"locs": torch.tensor([-1.0, 1.0], dtype=torch.float64)})
    guide = AutoDiagonalNormal(poutine.block(two_locs, hide=["z", "obs"]),
                               init_loc_fn=start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        fit = probmix.fit(two_locs, x, engine="svi", guide=guide, init="prior", seed=0,
                          steps=800, lr=0.05, progress=False)
    assert fit.options["guide"] == "AutoDiagonalNormal"
    np.testing.assert_allclose(np.sort(fit.params["locs"]), [-3, 3], atol=0.4)


def test_default_guide_is_the_laplace_approximation(walkthrough):
    """A GaussianMixture's default guide is the full-rank Normal N(MAP, H⁻¹): its sds of the
    means are CAVI's exact ones (3000 separated points, where the Laplace and the mean-field
    posteriors agree) to within the Monte Carlo error of 4000 draws (about 1%) and the
    approximations' differences, and it is centred at the MAP."""
    x, map_fit, fit = walkthrough
    assert fit.options["guide"] == "laplace" and fit.options["laplace_start"]
    assert fit.n_iter == 0 and fit.converged
    start = _svi(x, num_draws=4000)
    cavi = probmix.fit(MODEL, x, engine="svi", method="cavi", seed=0, num_draws=4000)
    ratio = start.draws["means"].std((0, 1)) / cavi.draws["means"].std((0, 1))
    assert np.all(np.abs(ratio - 1) < 0.08), ratio
    sd = start.draws["means"].std((0, 1))
    assert np.all(np.abs(np.median(start.draws["means"], (0, 1)) - map_fit.means) < 0.1 * sd)
    assert _svi(x[:30], guide="normal", steps=5).options["laplace_start"] is False
    with pytest.raises(ValueError, match="laplace"):
        _svi(x[:30], guide="laplace", init="prior")
