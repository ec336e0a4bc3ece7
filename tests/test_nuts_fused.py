"""The compiled NUTS (probmix.infer.mcmc.nuts_fused): its potential equals the torch closed
form, it serves only where it applies, and it samples the posterior the torch sampler does."""

import warnings

import numpy as np
import pytest
import torch

import probmix
from probmix.infer.mcmc import nuts_fused
from probmix.infer.mcmc.potential import gmm_potential
from probmix.infer.standardize import Standardizer

pytest.importorskip("numba")


def _potential(x, k, covariance="full"):
    model = probmix.GaussianMixture(k, covariance=covariance)
    std = Standardizer(torch.as_tensor(x))
    prior = model.resolve_prior(torch.as_tensor(x)).affine(std.center, std.scale)
    return gmm_potential(model, std.x, prior).fn


@pytest.mark.parametrize("k, n, d", [(1, 20, 2), (2, 40, 1), (3, 50, 2), (4, 30, 3), (2, 30, 6)])
def test_value_and_gradient_equal_the_torch_closed_form(rng, k, n, d):
    fn = _potential(rng.normal(size=(n, d)), k)
    spec = nuts_fused.fused_spec(fn)
    assert spec is not None
    m = d * (d + 1) // 2
    u_w, u_p, mu = (torch.as_tensor(rng.normal(size=s)) for s in
                    [(5, k - 1), (5, k, m), (5, k, d)])
    value, (g_w, g_p, g_m) = fn.batched(u_w, 0.5 * u_p, mu)
    z = torch.cat([mu.reshape(5, -1), 0.5 * u_p.reshape(5, -1), u_w], -1).numpy()
    v2, g2 = nuts_fused.value_and_grad(spec, z)
    expected = torch.cat([g_m.reshape(5, -1), g_p.reshape(5, -1), g_w], -1).numpy()
    np.testing.assert_allclose(v2, value.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g2, expected, rtol=1e-9, atol=1e-9)


def test_serves_only_float64_cpu_full_covariances(rng, monkeypatch):
    x = rng.normal(size=(30, 2))
    assert nuts_fused.fused_spec(_potential(x, 2)) is not None
    assert nuts_fused.fused_spec(_potential(x, 2, covariance="diag")) is None
    assert nuts_fused.fused_spec(_potential(x.astype(np.float32), 2)) is None
    monkeypatch.setenv("PROBMIX_FUSED", "0")
    assert nuts_fused.fused_spec(_potential(x, 2)) is None


def test_statistics_are_consistent(rng):
    """Tree depth d took between 2^d - 1 and 2^(d+1) leapfrog steps; energy minus the
    previous draw's potential is a fresh kinetic energy (mean P/2, never negative)."""
    x = np.concatenate([rng.normal(-2, 1, size=(40, 2)), rng.normal(2, 1, size=(40, 2))])
    fn = _potential(x, 2)
    spec = nuts_fused.fused_spec(fn)
    p = 2 * 2 + 2 * 3 + 1
    init = 0.1 * rng.normal(size=(2, p))
    init[:, :4] = [-1, -1, 1, 1]
    out = nuts_fused.run_fused(spec, init, num_samples=300, num_warmup=200, seed=1,
                               dense_mass=True)
    st = out["stats"]
    depth, steps = st["tree_depth"], st["n_steps"]
    assert np.all(2**depth - 1 <= steps) and np.all(steps <= 2 ** (depth + 1))
    kinetic = st["energy"][:, 1:] + st["lp"][:, :-1]
    assert np.all(kinetic >= -1e-9)
    assert abs(kinetic.mean() - p / 2) < 4 * np.sqrt(p / 2 / kinetic.size * 3)
    assert not st["diverging"].any() and 0.6 < st["acceptance_rate"].mean() < 0.99
    again = nuts_fused.run_fused(spec, init, num_samples=300, num_warmup=200, seed=1,
                                 dense_mass=True)
    np.testing.assert_array_equal(out["samples"].numpy(), again["samples"].numpy())


def test_switch_runs_the_torch_sampler(monkeypatch):
    """PROBMIX_FUSED=0 runs the batched torch sampler: another random stream, same shapes."""
    x, _ = probmix.three_clusters(20, seed=1)
    kw = dict(engine="mcmc", seed=0, num_samples=20, num_warmup=20, num_chains=2,
              progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = probmix.fit(probmix.GaussianMixture(2), x, **kw)
        monkeypatch.setenv("PROBMIX_FUSED", "0")
        plain = probmix.fit(probmix.GaussianMixture(2), x, **kw)
    assert fused.draws["means"].shape == plain.draws["means"].shape == (2, 20, 2, 2)
    assert np.isfinite(plain.draws["means"]).all() and np.isfinite(fused.draws["means"]).all()
    assert not np.allclose(fused.draws["means"], plain.draws["means"])
    for name in fused.sample_stats:
        assert fused.sample_stats[name].dtype.kind == plain.sample_stats[name].dtype.kind, name


@pytest.mark.slow
@pytest.mark.parametrize("dense", [True, False])
def test_compiled_and_torch_samplers_agree(monkeypatch, dense):
    """Posterior means and sds of the component means within 4 combined Monte Carlo errors."""
    x, _ = probmix.three_clusters(50, seed=2)
    kw = dict(engine="mcmc", seed=0, num_samples=1000, num_warmup=500, num_chains=4,
              dense_mass=dense, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = probmix.fit(probmix.GaussianMixture(3), x, **kw)
        monkeypatch.setenv("PROBMIX_FUSED", "0")
        plain = probmix.fit(probmix.GaussianMixture(3), x, **kw)
    a = fused.summary(var_names=["means"], round_to=None)
    b = plain.summary(var_names=["means"], round_to=None)
    assert not np.array_equal(fused.draws["means"], plain.draws["means"])  # two samplers
    assert (abs(a["mean"] - b["mean"]) <= 4 * np.hypot(a["mcse_mean"], b["mcse_mean"])).all()
    assert (abs(a["sd"] - b["sd"]) <= 4 * np.hypot(a["mcse_sd"], b["mcse_sd"])).all()


def test_the_fit_records_which_sampler_ran(monkeypatch):
    x = probmix.three_clusters(60, seed=0)[0]
    model = probmix.GaussianMixture(2)
    opts = dict(engine="mcmc", method="nuts", num_samples=20, num_warmup=20, num_chains=2,
                seed=0, progress=False)
    fit = probmix.fit(model, x, **opts)
    assert fit.options["backend"] == "batched" and fit.options["compiled"] is True
    monkeypatch.setenv("PROBMIX_FUSED", "0")
    fit = probmix.fit(model, x, **opts)
    assert fit.options["backend"] == "batched" and fit.options["compiled"] is False
