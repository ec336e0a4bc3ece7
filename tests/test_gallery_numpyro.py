"""probmix's NUTS against NumPyro's on the same gallery program and data (slow).

NumPyro is not installed in CI: ``benchmarks/numpyro_gallery_reference.py`` ran it once, in a
separate venv, and stored the posterior means, sds and Monte Carlo standard errors in
``tests/data/numpyro_gallery.json`` (with the data and how it was made). Here probmix runs NUTS
on the same program and data, both sides summarised by the script's own functions (components
sorted by the first coordinate of their means per draw, the same ESS estimator).

Threshold, per parameter: |Δ mean| < 4 combined MCSE + 0.05 NumPyro sd. If both samplers
draw from the same posterior, Δ / combined MCSE is close to N(0, 1); 4 of them is passed
with probability 1 - 6e-5, so the 36 compared parameters (18 a model) pass together with
probability 0.998. The 0.05 sd allows for the ESS estimates' own error (about 10 %) and for
bias of order 1/draws in the short chains. sd ratios within 15 % (an sd from ESS >= 1000 is
within 2 % a standard error). A wrong prior moves the means by more: see the note of
``test_nuts_agrees_with_numpyro``.
"""

import functools
import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import probmix

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "numpyro_gallery.json"
#: probmix's draws per chain (4 chains): min ESS of the compared parameters >= 1000
NUM_SAMPLES, NUM_WARMUP = 1000, 500


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(ours: dict, reference: dict) -> dict:
    """Per group: Δ mean in combined MCSE and in reference sd, and the sd ratio (flat arrays)."""
    out = {}
    for group, ref in reference.items():
        mine = ours[group]
        delta = np.ravel(mine["mean"]) - np.ravel(ref["mean"])
        mcse = np.hypot(np.ravel(mine["mcse"]), np.ravel(ref["mcse"]))
        sd = np.ravel(ref["sd"])
        out[group] = {"delta": delta, "in_mcse": delta / mcse, "in_sd": delta / sd,
                      "allowed": 4 * mcse + 0.05 * sd, "sd_ratio": np.ravel(mine["sd"]) / sd}
    return out


def probmix_summary(module, name: str, x: np.ndarray, options: dict) -> tuple[dict, object]:
    """probmix's NUTS on ``module.program`` (the gallery file ``name``), summarised as the
    reference is; and the fit."""
    script = _load(ROOT / "benchmarks" / "numpyro_gallery_reference.py", "numpyro_reference")
    program = functools.partial(module.program, n_components=options["n_components"],
                                eta=options["eta"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = probmix.fit(program, x, engine="mcmc", seed=0, num_samples=NUM_SAMPLES,
                          num_warmup=NUM_WARMUP, num_chains=4, progress=False)
    return script.summarise(script.global_parameters(fit.draws, name)), fit


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lkj_gaussian", "ordered_2d"])
def test_nuts_agrees_with_numpyro(name):
    """Posterior means within 4 combined MCSE + 0.05 sd of NumPyro's, sds within 15 %."""
    reference = json.loads(REFERENCE.read_text())["models"][name]
    module = _load(ROOT / "models" / f"{name}.py", f"gallery_{name}")
    x = np.asarray(reference["x"])
    # the data the reference saw is still what simulate draws (else rerun the script)
    np.testing.assert_allclose(module.simulate(reference["n"], seed=reference["seed"])[0], x,
                               rtol=1e-13)
    ref = reference["summary"]
    assert max(np.max(s["r_hat"]) for s in ref.values()) < 1.01  # the reference converged
    ours, fit = probmix_summary(module, name, x, reference)
    assert max(np.max(s["r_hat"]) for s in ours.values()) < 1.01
    table = compare(ours, ref)
    for group, c in table.items():
        print(f"{name} {group}: max |Δ| {np.abs(c['in_sd']).max():.3f} sd, "
              f"{np.abs(c['in_mcse']).max():.2f} MCSE; sd ratio "
              f"{c['sd_ratio'].min():.3f}-{c['sd_ratio'].max():.3f}")
    print(f"{name}: sampling {fit.options['seconds']:.0f} s")
    for group, c in table.items():
        assert np.all(np.abs(c["delta"]) < c["allowed"]), (group, c["in_sd"], c["in_mcse"])
        assert np.all(np.abs(c["sd_ratio"] - 1) < 0.15), (group, c["sd_ratio"])
