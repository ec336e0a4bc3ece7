"""The MixtureModel interface: a GaussianMixture and a wrapped program answer the same questions."""

import warnings

import numpy as np
import pyro.distributions as dist
import pytest
import torch

import probmix
from probmix.model.interface import MixtureModel, ProgramModel, as_model
from programs import two_locs

X, _ = probmix.three_clusters(60, seed=0)


def test_as_model_gives_the_interface():
    model = probmix.GaussianMixture(3)
    assert as_model(model) is model and isinstance(model, MixtureModel)
    wrapped = as_model(two_locs)
    assert isinstance(wrapped, ProgramModel) and wrapped.program is two_locs
    with pytest.raises(TypeError, match="callable"):
        as_model(3)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_gaussian_log_joint_is_the_mixture_density(covariance):
    """Batched log π_k + log N(x | μ_k, Σ_k), checked against torch's MultivariateNormal."""
    model = probmix.GaussianMixture(2, covariance=covariance)
    x = torch.as_tensor(X)
    params = {"weights": np.array([[0.3, 0.7], [0.5, 0.5]]),
              "means": np.array([[[0.0, 1.0], [2.0, -1.0]], [[1.0, 1.0], [-1.0, 0.5]]])}
    full = np.array([[[2.0, 0.3], [0.3, 1.0]], [[1.5, -0.2], [-0.2, 0.8]]])
    if covariance == "tied":
        full = np.broadcast_to(full[0], full.shape).copy()
    elif covariance == "diag":
        full = full * np.eye(2)
    elif covariance == "spherical":
        full = np.eye(2) * np.array([1.3, 0.6])[:, None, None]
    native = model.family.from_full(torch.as_tensor(np.stack([full, full]))).numpy()
    params["covariances"] = native
    got = model.log_joint(params, x, shift=x.mean(0).numpy(), scale=3.0)  # (B, N, K)
    want = torch.stack([torch.stack([
        torch.log(torch.as_tensor(params["weights"][b, k])) + torch.distributions.MultivariateNormal(
            torch.as_tensor(params["means"][b, k]), torch.as_tensor(full[k])).log_prob(x)
        for k in range(2)], -1) for b in range(2)])  # (B, N, K)
    assert got.shape == (2, X.shape[0], 2)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_program_log_joint_matches_pyro_and_batches():
    x = torch.as_tensor(X[:, :1])
    program = as_model(two_locs)
    params = {"weights": np.array([[0.4, 0.6], [0.5, 0.5]]), "scale": np.array([1.0, 2.0]),
              "locs": np.array([[-3.0, 3.0], [0.0, 1.0]])}
    got = program.log_joint(params, x)
    for b in range(2):
        w, s, m = (torch.as_tensor(params[n][b]) for n in ("weights", "scale", "locs"))
        want = torch.log(w) + dist.Normal(m, s).log_prob(x)  # (N, K)
        torch.testing.assert_close(got[b], want)


def test_component_axes_and_parameter_counts():
    x = torch.as_tensor(X[:, :1])
    assert probmix.GaussianMixture(3).component_axes() == {
        "weights": -1, "means": -2, "precisions": -3, "covariances": -3}
    assert "precisions" not in probmix.GaussianMixture(3, covariance="tied").component_axes()
    program = as_model(two_locs)
    assert program.component_axes(x) == {"weights": -1, "locs": -1}
    assert program.n_parameters(1, x=x) == 1 + 1 + 2
    assert probmix.GaussianMixture(3).n_parameters(2) == 17
    with pytest.raises(ValueError, match="pass x"):
        program.n_parameters(1)


def test_program_sampling_is_seeded():
    program = as_model(two_locs)
    params = {"weights": np.array([0.5, 0.5]), "scale": np.array(0.1),
              "locs": np.array([-5.0, 5.0])}
    x, z = program.sample(200, seed=0, params=params)
    again, _ = program.sample(200, seed=0, params=params)
    assert x.shape == (200, 1) and z.shape == (200,) and np.array_equal(x, again)
    np.testing.assert_allclose(x[:, 0], np.where(z == 0, -5.0, 5.0), atol=0.6)


def test_a_custom_programs_arviz_data_has_a_component_dim():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = probmix.fit(two_locs, X[:, :1], engine="svi", steps=5, num_draws=4,
                          progress=False, seed=0)
    posterior = fit.to_arviz(log_likelihood=False)["posterior"]
    assert posterior["locs"].dims == ("chain", "draw", "component")
    assert posterior["weights"].dims == ("chain", "draw", "component")
    assert posterior.sizes["component"] == 2
