"""Covariance families: closed-form log-densities and parameter counts against oracles."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from probmix.model.covariance import (FAMILIES, DiagCovariance, TiedCovariance, get_family,
                                       register_family)
from probmix.infer.map.em_steps import PreparedData, natural_weights, log_joint

K, D = 3, 4
BUILT_IN = ("diag", "full", "spherical", "tied")  # mclust's VVI, VVV, VII, EEE


def _random_cov(family, rng):
    a = rng.normal(size=(K, D, D))
    full = a @ a.transpose(0, 2, 1) + D * np.eye(D)
    return {"full": full, "diag": rng.uniform(0.5, 2, (K, D)), "spherical": rng.uniform(0.5, 2, K),
            "tied": full[0]}[family]


@pytest.mark.parametrize("name", BUILT_IN)
def test_exponential_family_log_density_equals_scipy(name, rng):
    family = get_family(name)
    cov = _random_cov(name, rng)
    means = rng.normal(size=(K, D)) * 3
    weights = np.array([0.2, 0.3, 0.5])
    x = rng.normal(size=(50, D)) * 2 + 10.0  # far from the origin: the expansion must stay exact
    full = family.to_full(torch.as_tensor(cov), K, D).numpy()
    expected = np.stack([np.log(weights[k]) + multivariate_normal(means[k], full[k]).logpdf(x)
                         for k in range(K)], 1)
    tx = torch.as_tensor(x)
    data = PreparedData(tx, family)
    prec_chol, ok = family.precision_cholesky(torch.as_tensor(cov) / data.scale**2)
    assert bool(ok.all())
    w = natural_weights(family, torch.as_tensor(weights)[None],
                        ((torch.as_tensor(means) - data.shift) / data.scale)[None], prec_chol[None])[0]
    got = log_joint(data, w).numpy() - D * np.log(data.scale)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("name", BUILT_IN)
def test_parameter_counts_match_closed_forms_and_sklearn(name):
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    family = get_family(name)
    closed = {"full": K * D * (D + 1) // 2, "diag": K * D, "spherical": K,
              "tied": D * (D + 1) // 2}[name]
    assert family.n_parameters(K, D) == (K - 1) + K * D + closed
    gm = sklearn_mixture.GaussianMixture(K, covariance_type=name)
    gm.means_ = np.zeros((K, D))
    assert family.n_parameters(K, D) == gm._n_parameters()


@pytest.mark.parametrize("name", BUILT_IN)
def test_full_round_trip(name, rng):
    family = get_family(name)
    cov = torch.as_tensor(_random_cov(name, rng))
    torch.testing.assert_close(family.from_full(family.to_full(cov, K, D)), cov)


def test_precision_cholesky_follows_sklearn_convention(rng):
    family = get_family("full")
    cov = torch.as_tensor(_random_cov("full", rng))
    u, ok = family.precision_cholesky(cov)
    assert torch.allclose(torch.triu(u), u)  # upper triangular
    torch.testing.assert_close(u @ u.transpose(-1, -2), torch.linalg.inv(cov))


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="'banana'"):
        get_family("banana")


def test_register_family_refuses_a_taken_name_and_a_non_family():
    with pytest.raises(ValueError, match="'diag'"):
        register_family(DiagCovariance())
    with pytest.raises(TypeError, match="CovarianceFamily"):
        register_family("diag")


@pytest.mark.parametrize("base", [DiagCovariance, TiedCovariance])
def test_a_new_family_needs_no_engine_changes(base, rng):
    """A family the engines have never seen (here a renamed copy of a built-in) fits with EM,
    CAVI and Gibbs exactly as the built-in does: nothing branches on the family's name."""
    import warnings

    import probmix

    new = type("Renamed", (base,), {"name": f"renamed_{base.name}"})()
    x = probmix.three_clusters(60, seed=0)[0]
    runs = {"map": dict(engine="map"), "cavi": dict(engine="svi", method="cavi", num_draws=5),
            "gibbs": dict(engine="mcmc", kernel="gibbs", num_samples=3, warmup=2, chains=1,
                          progress=False)}
    for name, options in runs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = probmix.fit(probmix.GaussianMixture(2, covariance=base()), x, seed=3, **options)
            b = probmix.fit(probmix.GaussianMixture(2, covariance=new), x, seed=3, **options)
        for key, value in a.params.items():
            np.testing.assert_array_equal(b.params[key], value, err_msg=f"{name}: {key}")
