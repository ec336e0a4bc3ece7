"""Posterior predictive draws (probmix.results.predictive): moments of a known mixture,
shapes, seeds, the ArviZ group, and a custom program's path."""

import numpy as np
import pytest
import torch

import probmix
from programs import two_locs
from probmix.results.posterior import fit_from_draws

WEIGHTS = np.array([0.3, 0.7])
MEANS = np.array([[-3.0, 1.0], [2.0, 0.0]])
COV = np.array([[[1.0, 0.6], [0.6, 2.0]], [[0.5, -0.2], [-0.2, 0.3]]])


def _point_mass_fit(c=2, s=50, n=30):
    """A fit whose every draw is the same known mixture (its predictive is that mixture)."""
    draws = {"weights": np.broadcast_to(WEIGHTS, (c, s, 2)).copy(),
             "means": np.broadcast_to(MEANS, (c, s, 2, 2)).copy(),
             "precisions": np.broadcast_to(np.linalg.inv(COV), (c, s, 2, 2, 2)).copy()}
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(n, 2)))
    return fit_from_draws(probmix.GaussianMixture(2), x, draws, engine="mcmc", reference=None)


def test_gaussian_predictive_has_the_mixtures_moments():
    fit = _point_mass_fit()
    y = fit.sample_posterior_predictive(400, seed=1)  # (2, 50, 400, 2)
    assert y.shape == (2, 50, 400, 2)
    flat = y.reshape(-1, 2)
    mean = WEIGHTS @ MEANS
    centred = MEANS - mean
    cov = np.einsum("k,kij->ij", WEIGHTS, COV + centred[:, :, None] * centred[:, None, :])
    se = np.sqrt(np.diag(cov) / len(flat))
    assert np.all(np.abs(flat.mean(0) - mean) < 4 * se)
    np.testing.assert_allclose(np.cov(flat.T), cov, rtol=0.03, atol=0.03)


def test_predictive_defaults_to_n_points_and_follows_the_seed():
    fit = _point_mass_fit()
    a = fit.sample_posterior_predictive(seed=3)
    assert a.shape == (2, 50, 30, 2)
    np.testing.assert_array_equal(a, fit.sample_posterior_predictive(seed=3))
    assert not np.array_equal(a, fit.sample_posterior_predictive(seed=4))
    tree = fit.to_arviz(log_likelihood=False, posterior_predictive=True, seed=3)
    assert tree["posterior_predictive"]["obs"].dims == ("chain", "draw", "point", "feature")
    np.testing.assert_array_equal(tree["posterior_predictive"]["obs"].values, a)


def test_predictive_needs_draws():
    x, _ = probmix.three_clusters(20, seed=0)
    fit = probmix.fit(probmix.GaussianMixture(2), x, seed=0)
    with pytest.raises(ValueError, match="point estimate"):
        fit.sample_posterior_predictive(5)


def test_custom_program_predictive_runs_the_program_per_draw():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(np.concatenate([rng.normal(-3, 1, 40), rng.normal(3, 1, 40)])[:, None])
    draws = {"weights": np.broadcast_to([0.5, 0.5], (1, 4, 2)).copy(),
             "scale": np.full((1, 4), 0.01), "locs": np.broadcast_to([-3.0, 3.0], (1, 4, 2)).copy()}
    fit = fit_from_draws(two_locs, x, draws, engine="svi", reference=None)
    y = fit.sample_posterior_predictive(50, seed=0)
    assert y.shape == (1, 4, 50, 1)
    assert np.all(np.minimum(np.abs(y + 3), np.abs(y - 3)) < 0.1)  # at a location, scale 0.01
