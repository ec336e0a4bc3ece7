"""The batched NUTS (probmix.infer.mcmc.nuts_batched): exact Gaussian targets, its warm-up
schedule, and the batched closed-form potential equal to the per-chain one."""

import numpy as np
import pytest
import torch

import probmix
from probmix.infer.mcmc.nuts_adapt import Welford, mass_windows
from probmix.infer.mcmc.nuts_batched import run_batched
from probmix.infer.mcmc.potential import gmm_potential
from probmix.infer.standardize import Standardizer

COV = torch.tensor([[1.0, 0.9, 0.0], [0.9, 1.0, 0.3], [0.0, 0.3, 4.0]], dtype=torch.float64)
MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def _gaussian_vg(z):
    prec = torch.linalg.inv(COV)
    d = z - MEAN
    g = d @ prec
    return 0.5 * (g * d).sum(-1), g


@pytest.mark.parametrize("dense", [False, True])
def test_samples_a_correlated_gaussian(dense):
    """Mean and covariance of a correlated 3-D Gaussian within Monte Carlo error; the energy
    minus the previous draw's potential is a fresh kinetic energy, mean P/2 = 1.5."""
    init = torch.tensor([[5.0, 5.0, 5.0], [-5.0, 0.0, 1.0], [0.0, 0.0, 0.0], [3.0, -3.0, 9.0]],
                        dtype=torch.float64)
    out = run_batched(_gaussian_vg, init, num_samples=800, num_warmup=300, seed=0,
                      dense_mass=dense)
    z = out["samples"].reshape(-1, 3).numpy()
    # autocorrelated draws: allow 4 standard errors with an effective size of a third
    se = np.sqrt(np.diag(COV.numpy()) / (len(z) / 3))
    assert np.all(np.abs(z.mean(0) - MEAN.numpy()) < 4 * se)
    np.testing.assert_allclose(np.cov(z.T), COV.numpy(), atol=0.15 * 4 ** 0.5, rtol=0.1)
    stats = out["stats"]
    assert not stats["diverging"].any()
    kinetic = stats["energy"][:, 1:] + stats["lp"][:, :-1]
    assert np.all(kinetic >= -1e-9) and abs(kinetic.mean() - 1.5) < 4 * np.sqrt(1.5 / kinetic.size)
    depth, steps = stats["tree_depth"], stats["n_steps"]
    assert np.all(2**depth - 1 <= steps) and np.all(steps <= 2 ** (depth + 1))
    assert 0.6 < stats["acceptance_rate"].mean() < 0.99


def test_mass_windows_follow_stans_schedule():
    assert mass_windows(1000) == [99, 149, 249, 449, 949]  # Stan: 75 + 25, 50, 100, 200, 500
    assert mass_windows(10) == []
    assert all(0 < end < 200 - 20 for end in mass_windows(200))


def test_welford_matches_numpy(rng):
    draws = torch.as_tensor(rng.normal(size=(50, 2, 3)))
    w = Welford(2, 3, dense=True, dtype=torch.float64, device="cpu")
    for row in draws:
        w.add(row)
    n = 50
    expected = np.stack([np.cov(draws[:, c].numpy().T) for c in range(2)]) * n / (n + 5.0) \
        + 1e-3 * 5 / (n + 5) * np.eye(3)
    np.testing.assert_allclose(w.inverse_mass().numpy(), expected, rtol=1e-10)


def test_batched_potential_equals_each_chains(rng):
    x, _ = probmix.three_clusters(50, seed=1)
    model = probmix.GaussianMixture(3)
    std = Standardizer(torch.as_tensor(x))
    prior = model.resolve_prior(torch.as_tensor(x)).affine(std.center, std.scale)
    fn = gmm_potential(model, std.x, prior).fn
    u = {"weights": torch.as_tensor(rng.normal(size=(4, 2))),
         "precisions": torch.as_tensor(0.3 * rng.normal(size=(4, 3, 3))),
         "means": torch.as_tensor(rng.normal(size=(4, 3, 2)))}
    value, grads = fn.batched(u["weights"], u["precisions"], u["means"])
    for c in range(4):
        params = {n: v[c].clone().requires_grad_() for n, v in u.items()}
        single = fn(params)
        g = torch.autograd.grad(single, [params["weights"], params["precisions"],
                                         params["means"]])
        assert float(value[c]) == pytest.approx(float(single.detach()), rel=1e-12)
        for a, b in zip(grads, g):
            np.testing.assert_allclose(a[c].numpy(), b.numpy(), rtol=1e-10, atol=1e-10)
