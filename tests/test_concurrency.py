"""Fits running in several threads at once give exactly what each gives alone (issue 17,
item 14): the Pyro engines hold one lock around Pyro's process-wide state, the closed-form
engines run side by side."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import probmix
from programs import two_locs

X, _ = probmix.three_clusters(40, seed=4)
MODEL = probmix.GaussianMixture(3)

CASES = {
    "svi": dict(engine="svi", steps=40, num_draws=10, progress=False),
    "nuts": dict(engine="mcmc", num_samples=10, num_warmup=10, num_chains=2, progress=False),
    "gradient": dict(engine="map", method="gradient", max_iter=15),
    "em": dict(engine="map"),
    "cavi": dict(engine="svi", method="cavi", num_draws=10),
    "gibbs": dict(engine="mcmc", method="gibbs", num_samples=10, num_warmup=5, progress=False),
}


def _fit(job):
    name, seed = job
    model = two_locs if name == "gradient" else MODEL
    data = X[:, :1] if name == "gradient" else X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return probmix.fit(model, data, seed=seed, **CASES[name])


def _same(a, b):
    assert list(a.params) == list(b.params)
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    for k in a.draws:
        assert np.array_equal(a.draws[k], b.draws[k]), k


@pytest.mark.parametrize("name", ["svi", "nuts"])
def test_concurrent_pyro_fits_equal_the_same_fits_alone(name):
    jobs = [(name, s) for s in range(4)]
    alone = [_fit(j) for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(_fit, jobs))
    for a, b in zip(alone, together):
        _same(a, b)
    assert not np.array_equal(alone[0].params["means"], alone[1].params["means"])  # seeds differ


def test_every_engine_at_once_equals_each_alone():
    jobs = [(name, 1) for name in CASES]
    alone = [_fit(j) for j in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(_fit, jobs))
    for a, b in zip(alone, together):
        _same(a, b)
    # predicting with a custom program traces it: safe beside a running Pyro fit
    program_fit = alone[list(CASES).index("gradient")]
    expected = program_fit.predict_proba(X[:, :1])
    with ThreadPoolExecutor(2) as pool:
        proba = pool.submit(program_fit.predict_proba, X[:, :1])
        pool.submit(_fit, ("svi", 2)).result()
        assert np.array_equal(proba.result(), expected)
