"""The GaussianMixture declaration: a real Pyro program, sampling, priors."""

import numpy as np
import pytest
import torch
from pyro import poutine

import probmix
from probmix.io.datasets import THREE_CLUSTERS


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_program_has_the_declared_sites_and_plates(covariance):
    model = probmix.GaussianMixture(3, covariance=covariance)
    x = torch.randn(20, 2, dtype=torch.float64)
    trace = poutine.trace(model.program).get_trace(x)
    nodes = trace.nodes
    assert {"weights", "means", "precisions", "z", "obs"} <= set(nodes)
    assert nodes["z"]["infer"]["enumerate"] == "parallel"
    assert nodes["obs"]["is_observed"] and torch.equal(nodes["obs"]["value"], x)
    plates = lambda s: {f.name for f in nodes[s]["cond_indep_stack"]}  # noqa: E731
    assert plates("means") == {"components"} and plates("z") == {"data"}
    assert plates("precisions") == (set() if covariance == "tied" else {"components"})
    assert nodes["weights"]["value"].shape == (3,)
    assert nodes["means"]["value"].shape == (3, 2)


def test_program_default_prior_is_scaled_to_the_data():
    model = probmix.GaussianMixture(2)
    x = torch.randn(500, 2, dtype=torch.float64) * torch.tensor([1.0, 10.0]) + 100
    prior = model.resolve_prior(x)
    torch.testing.assert_close(prior.mean_loc, x.mean(0))
    # Fraley & Raftery's: Ψ₀ = cov / K^(2/D) (here / 2), ν₀ = D + 2, β₀ = 0.01
    torch.testing.assert_close(prior.scale, torch.cov(x.T) / 2, rtol=1e-6, atol=1e-8)
    assert float(prior.dof) == 4 and float(prior.mean_precision) == 0.01
    assert model.resolve_prior(x) is not None and probmix.GaussianMixture(
        2, prior="flat").resolve_prior(x) is None


def test_sampling_with_given_parameters_reproduces_them():
    model = probmix.GaussianMixture(3)
    x, z = model.sample(30000, seed=1, params=THREE_CLUSTERS)
    assert x.shape == (30000, 2) and set(np.unique(z)) == {0, 1, 2}
    np.testing.assert_allclose(np.bincount(z) / len(z), THREE_CLUSTERS["weights"], atol=0.01)
    for k in range(3):
        np.testing.assert_allclose(x[z == k].mean(0), THREE_CLUSTERS["means"][k], atol=0.06)
        np.testing.assert_allclose(np.cov(x[z == k].T), THREE_CLUSTERS["covariances"][k], atol=0.15)


def test_sampling_is_deterministic_under_a_seed_and_leaves_global_rng_alone():
    model = probmix.GaussianMixture(2, covariance="diag")
    state = torch.random.get_rng_state()
    a = model.sample(50, seed=3, n_features=2)
    b = model.sample(50, seed=3, n_features=2)
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], model.sample(50, seed=4, n_features=2)[0])


def test_non_positive_definite_covariance_is_refused_with_eigenvalues():
    bad = dict(THREE_CLUSTERS, covariances=THREE_CLUSTERS["covariances"].copy())
    bad["covariances"][0] = [[0.1, 0.2], [0.2, 0.1]]  # the walkthrough's first cluster
    with pytest.raises(ValueError, match=r"\[0\] is not positive definite \(eigenvalues -0.1, 0.3\)"):
        probmix.GaussianMixture(3).sample(10, seed=0, params=bad)


def test_flat_prior_cannot_be_sampled_without_parameters():
    with pytest.raises(ValueError, match="improper"):
        probmix.GaussianMixture(2, prior="flat").sample(10, seed=0, n_features=2)


@pytest.mark.parametrize("kwargs, word", [
    (dict(n_components=0), "n_components"),
    (dict(n_components=2, covariance="banana"), "covariance"),
    (dict(n_components=2, prior="weak"), "prior"),
])
def test_bad_declarations(kwargs, word):
    with pytest.raises(ValueError, match=word):
        probmix.GaussianMixture(**kwargs)


@pytest.mark.parametrize("prior, word", [
    (probmix.Prior(dof=0.5), "dof"),
    (probmix.Prior(mean_precision=-1), "mean_precision"),
    (probmix.Prior(scale=[[1, 2], [2, 1]]), "positive definite"),
    (probmix.Prior(mean_loc=[0, 0, 0]), "mean_loc"),
    (probmix.Prior(weight_concentration=[1, 1]), "weight_concentration"),
])
def test_bad_priors_name_the_field(prior, word):
    with pytest.raises(ValueError, match=word):
        probmix.GaussianMixture(3, prior=prior).resolve_prior(torch.randn(10, 2, dtype=torch.float64))
