"""From draws to a Fit (probmix.results.posterior): point estimates that exist, empty
components flagged, relabelling on the whole parameter, and an honest r_hat warning."""

import warnings

import numpy as np
import pytest
import torch

import probmix
from probmix.results.diagnostics import ConvergenceDiagnosticWarning, check_convergence
from probmix.results.posterior import fit_from_draws


def _draws(rng, c=4, s=200, spread=(1.0, 1.0)):
    """Draws (C, S, ...) of a two-component 2-D mixture near means (±4, 0), variances ``spread``."""
    means = np.array([[-4.0, 0.0], [4.0, 0.0]]) + 0.05 * rng.normal(size=(c, s, 2, 2))
    var = np.asarray(spread)[:, None] * np.exp(0.05 * rng.normal(size=(c, s, 2, 2)))
    prec = np.zeros((c, s, 2, 2, 2))
    prec[..., 0, 0], prec[..., 1, 1] = 1 / var[..., 0], 1 / var[..., 1]
    weights = np.array([0.5, 0.5]) + 0.01 * rng.normal(size=(c, s, 1)) * np.array([1, -1])
    return {"weights": weights, "means": means, "precisions": prec}


def _data(rng, n=200):
    return torch.as_tensor(np.concatenate([rng.normal(size=(n, 2)) + [-4, 0],
                                           rng.normal(size=(n, 2)) + [4, 0]]))


def test_covariance_estimate_is_the_inverse_mean_precision_and_ignores_wild_draws(rng):
    """A few draws with a near-zero precision (a huge covariance: an empty component's prior
    draw relabelled onto an occupied label) barely move the estimate; the plain average of the
    covariance draws is dominated by them."""
    model, x = probmix.GaussianMixture(2), _data(rng)
    draws = _draws(rng)
    clean = fit_from_draws(model, x, draws, engine="mcmc", reference=None)
    draws["precisions"][0, :2, 0] *= 1e-5  # 2 of 800 draws: covariance 1e5
    wild = fit_from_draws(model, x, draws, engine="mcmc", reference=None)
    np.testing.assert_allclose(wild.covariances, np.linalg.inv(draws["precisions"].mean((0, 1))))
    assert np.abs(wild.covariances[0] - clean.covariances[0]).max() < 0.01
    assert wild.draws["covariances"][:, :, 0].mean((0, 1))[0, 0] > 100  # what averaging gives


def test_empty_components_are_flagged(rng):
    model, x = probmix.GaussianMixture(3), _data(rng)
    draws = _draws(rng)
    c, s = draws["weights"].shape[:2]
    draws["weights"] = np.concatenate([draws["weights"] * (1 - 1e-9), np.full((c, s, 1), 1e-9)],
                                      -1)
    draws["means"] = np.concatenate([draws["means"], 50 + rng.normal(size=(c, s, 1, 2))], 2)
    draws["precisions"] = np.concatenate([draws["precisions"], draws["precisions"][:, :, :1]], 2)
    fit = fit_from_draws(model, x, draws, engine="mcmc", reference=None)
    assert fit.options["empty_components"] == [2]
    counts = np.asarray(fit.options["expected_counts"])
    np.testing.assert_allclose(counts[:2], [200, 200], atol=2)
    assert counts.sum() == pytest.approx(400)


def test_relabelling_uses_the_whole_parameter(rng):
    """Two components with the same mean, told apart only by their spread and weight: draws
    scrambled at random are put back in order (matching on the means alone cannot)."""
    c, s = 2, 300
    draws = _draws(rng, c, s, spread=(0.2, 9.0))
    draws["means"][:] = 0.05 * rng.normal(size=(c, s, 2, 2))  # both at the origin
    draws["weights"] = np.array([0.3, 0.7]) + 0.01 * rng.normal(size=(c, s, 1)) * np.array([1, -1])
    flip = rng.random((c, s)) < 0.5
    scrambled = {n: np.where(flip.reshape(c, s, *[1] * (v.ndim - 2)), v[:, :, ::-1], v)
                 for n, v in draws.items()}
    reference = {n: v[0, 0] for n, v in draws.items()}
    x = torch.as_tensor(rng.normal(size=(100, 2)))
    fit = fit_from_draws(probmix.GaussianMixture(2), x, scrambled, engine="mcmc",
                         reference=reference)
    np.testing.assert_allclose(fit.draws["precisions"], draws["precisions"])
    np.testing.assert_allclose(fit.draws["weights"], draws["weights"])


def test_r_hat_warning_says_whether_the_draws_were_relabelled(rng):
    model, x = probmix.GaussianMixture(2), _data(rng)
    draws = _draws(rng)
    swapped = {n: np.concatenate([v[:2], v[2:, :, ::-1]]) for n, v in draws.items()}
    raw = fit_from_draws(model, x, swapped, engine="mcmc", reference=None, relabel=False)
    with pytest.warns(ConvergenceDiagnosticWarning) as record:
        check_convergence(raw)
    message = str(record[0].message)
    assert "not relabelled" in message and "after relabelling" not in message
    reference = {n: v[0, 0] for n, v in draws.items()}
    fixed = fit_from_draws(model, x, swapped, engine="mcmc", reference=reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceDiagnosticWarning)
        assert check_convergence(fixed)["max_r_hat"] < 1.01
