"""NUTS and Gibbs sample the same posterior: moments agree within Monte Carlo error."""

import warnings

import numpy as np

import probmix
from probmix.io.datasets import three_clusters


def test_gibbs_and_nuts_agree_within_monte_carlo_error():
    x, _ = three_clusters(60, seed=5)  # 180 points: a posterior wide enough to compare
    model = probmix.GaussianMixture(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nuts = probmix.fit(model, x, engine="mcmc", seed=0, num_samples=400, num_warmup=300,
                           num_chains=2, progress=False)
        gibbs = probmix.fit(model, x, engine="mcmc", method="gibbs", seed=0, num_samples=2000,
                            num_warmup=300, num_chains=4, progress=False)
    a = nuts.summary(var_names=["means"], round_to=None)
    b = gibbs.summary(var_names=["means"], round_to=None)
    # Bound: 4 combined Monte Carlo standard errors (ArviZ's MCSE of the mean and of the sd,
    # which account for autocorrelation), i.e. a two-sided test at ~1e-4 per coordinate.
    mean_err = 4 * np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    sd_err = 4 * np.sqrt(a["mcse_sd"] ** 2 + b["mcse_sd"] ** 2)
    assert (abs(a["mean"] - b["mean"]) <= mean_err).all(), (a["mean"] - b["mean"], mean_err)
    assert (abs(a["sd"] - b["sd"]) <= sd_err).all(), (a["sd"] - b["sd"], sd_err)
