"""The NUTS engine: recovery, diagnostics, the generic path, and agreement with other engines."""

import warnings

import numpy as np
import pytest

import probmix
from programs import two_locs
from probmix.io.datasets import THREE_CLUSTERS, three_clusters
from probmix.results.diagnostics import ConvergenceDiagnosticWarning


@pytest.fixture(scope="module")
def nuts_fit():
    x, _ = three_clusters(100, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceDiagnosticWarning)
        fit = probmix.fit(probmix.GaussianMixture(3), x, engine="mcmc", seed=0, num_samples=200,
                          num_warmup=200, num_chains=2, progress=False)
    return x, fit


def test_draws_stats_and_shapes(nuts_fit):
    x, fit = nuts_fit
    assert fit.engine == "mcmc" and fit.options["method"] == "nuts"
    assert fit.draws["means"].shape == (2, 200, 3, 2)
    assert fit.draws["precisions"].shape == (2, 200, 3, 2, 2)
    for name in ("diverging", "n_steps", "tree_depth", "step_size", "acceptance_rate"):
        assert fit.sample_stats[name].shape == (2, 200)
    assert 0.5 < fit.sample_stats["acceptance_rate"].mean() <= 1.0
    assert fit.sample_stats["diverging"].sum() == 0
    assert fit.converged is None  # a sampler: r_hat, ESS and divergences say how it went


def test_tree_depth_is_the_samplers(nuts_fit):
    """Read from Pyro's doubling loop: a tree of depth d took 2^d - 1 leapfrog steps (one
    gradient each), plus at most 2^d in the subtree whose U-turn or divergence stopped it
    (and one more gradient where the sampler recomputed its start)."""
    _, fit = nuts_fit
    depth, steps = fit.sample_stats["tree_depth"], fit.sample_stats["n_steps"]
    assert depth.dtype.kind == "i" and depth.min() >= 0 and depth.max() <= 10
    assert np.all(2**depth - 1 <= steps) and np.all(steps <= 2 ** (depth + 1))
    x, _ = three_clusters(20, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceDiagnosticWarning)
        capped = probmix.fit(probmix.GaussianMixture(2), x, engine="mcmc", seed=0,
                             num_samples=20, num_warmup=10, num_chains=1, max_tree_depth=2,
                             progress=False)
    assert capped.sample_stats["tree_depth"].max() <= 2


def test_energy_is_the_hamiltonian_at_the_trajectory_start(nuts_fit):
    """energy_t = U(q_{t-1}) + K(p_t) and lp_t = -U(q_t): their difference is the kinetic energy
    of a fresh momentum p ~ N(0, M), whose mean is P/2 for P unconstrained parameters (here
    2 weights + 6 means + 9 precision entries = 17), and never negative."""
    _, fit = nuts_fit
    energy, lp = fit.sample_stats["energy"], fit.sample_stats["lp"]
    kinetic = energy[:, 1:] + lp[:, :-1]  # (C, S-1)
    assert np.all(kinetic >= 0)
    # K ~ Gamma(P/2, 1): sd sqrt(P/2) per draw; 4 standard errors over the draws
    assert abs(kinetic.mean() - 8.5) < 4 * np.sqrt(8.5 / kinetic.size)
    bfmi = np.asarray(__import__("arviz_stats").bfmi(fit.to_arviz(log_likelihood=False))
                      ["energy"].values)
    assert bfmi.shape == (2,) and np.all(bfmi > 0.3)  # E-BFMI computes; healthy here


def test_intervals_cover_the_truth(nuts_fit):
    x, fit = nuts_fit
    lo, hi = np.percentile(fit.draws["means"], [2.5, 97.5], axis=(0, 1))
    order = [np.argmin(((fit.means - m) ** 2).sum(1)) for m in THREE_CLUSTERS["means"]]
    assert np.all((lo[order] <= THREE_CLUSTERS["means"]) & (THREE_CLUSTERS["means"] <= hi[order]))


def test_agrees_with_map_and_cavi(nuts_fit):
    x, fit = nuts_fit
    map_fit = probmix.fit(probmix.GaussianMixture(3), x, seed=0)
    sd = fit.draws["means"].std(axis=(0, 1))
    assert np.all(np.abs(fit.means - map_fit.means) < 3 * sd + 0.02)
    cavi = probmix.fit(probmix.GaussianMixture(3), x, engine="svi", method="cavi", seed=0)
    assert np.all(np.abs(fit.means - cavi.means) < 3 * sd)


def test_arviz_has_every_group(nuts_fit):
    x, fit = nuts_fit
    tree = fit.to_arviz()
    assert tree["posterior"]["means"].dims == ("chain", "draw", "component", "feature")
    assert tree["log_likelihood"]["obs"].shape == (2, 200, len(x))
    assert set(tree["sample_stats"].data_vars) >= {"diverging", "tree_depth", "step_size"}
    table = fit.summary(var_names=["means"])
    assert table["r_hat"].notna().all() and (table["ess_bulk"] > 50).all()


@pytest.mark.parametrize("covariance, chains", [("diag", 2), ("full", 4)])
def test_sequential_equals_parallel(covariance, chains):
    """Pyro's kernel (diag) and the batched sampler (full: two groups of two chains in
    parallel processes) give the same draws either way."""
    x, _ = three_clusters(30, seed=4)
    model = probmix.GaussianMixture(2, covariance=covariance)
    kw = dict(engine="mcmc", seed=3, num_samples=30, num_warmup=30, num_chains=chains,
              progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = probmix.fit(model, x, chain_method="parallel", **kw)
        b = probmix.fit(model, x, chain_method="sequential", **kw)
    np.testing.assert_allclose(a.draws["means"], b.draws["means"], rtol=1e-12)
    assert not np.array_equal(a.draws["means"][0], a.draws["means"][1])


def test_divergences_warn_with_a_remedy(nuts_fit):
    from probmix.results.diagnostics import check_convergence

    x, fit = nuts_fit
    stats = dict(fit.sample_stats, diverging=np.ones_like(fit.sample_stats["diverging"]))
    bad = probmix.Fit(**{**fit.__dict__, "sample_stats": stats})
    with pytest.warns(ConvergenceDiagnosticWarning, match="target_accept_prob"):
        out = check_convergence(bad)
    assert out["divergences"] == 400


@pytest.mark.parametrize("kw, match", [
    ({"method": "hmc"}, "method must be one of"),
    ({"num_chains": 0}, "num_chains"),
    ({"init": "kmeans"}, "init must be"),
    ({"chain_method": "vectorized"}, "chain_method"),
])
def test_bad_options(kw, match):
    x, _ = three_clusters(20, seed=0)
    with pytest.raises(ValueError, match=match):
        probmix.fit(probmix.GaussianMixture(2), x, engine="mcmc", progress=False, **kw)


def test_custom_program_generic_path():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-3, 1, 60), rng.normal(3, 1, 60)])[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = probmix.fit(two_locs, x, engine="mcmc", seed=0, num_samples=100, num_warmup=100,
                          num_chains=2, progress=False)
    assert fit.draws["locs"].shape == (2, 100, 2) and fit.draws["scale"].shape == (2, 100)
    np.testing.assert_allclose(np.sort(fit.params["locs"]), [-3, 3], atol=0.5)
    # relabelled to the MAP order: both chains agree on which component is which
    np.testing.assert_allclose(fit.draws["locs"][0].mean(0), fit.draws["locs"][1].mean(0), atol=0.3)


def test_dirichlet_process_with_sparse_concentration():
    """The chains start at EM run with the concentration raised to 1 (no MAP below 1)."""
    x, _ = three_clusters(60, seed=0)
    model = probmix.GaussianMixture(5, covariance="diag", weights_prior="dirichlet_process",
                                    prior=probmix.Prior(weight_concentration=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = probmix.fit(model, x, engine="mcmc", seed=0, num_samples=60, num_warmup=60,
                          num_chains=2, init="map", progress=False)
        svi = probmix.fit(model, x, engine="svi", seed=0, steps=300, progress=False)
    for f in (fit, svi):
        assert "sticks" not in f.draws and f.draws["weights"].shape[-1] == 5
        assert np.sort(f.weights)[-3:].sum() > 0.9
