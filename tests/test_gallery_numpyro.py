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
within 2 % a standard error). A wrong prior moves the means by more: see
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
    """Posterior means within 4 combined MCSE + 0.05 sd of NumPyro's, sds within 15 %.

    Measured: at most 2.31 MCSE and 0.054 sd apart (lkj_gaussian), 1.33 MCSE and 0.031 sd
    (ordered_2d); sd ratios 0.945-1.034. A wrong prior fails it (checked by hand, probmix's
    side changed): lkj_gaussian with eta = 1 instead of 2 moves a correlation by 0.26 sd
    (11.8 MCSE, 3 parameters over the bound); ordered_2d with scales ~ HalfNormal(s / 2)
    instead of HalfNormal(2 s) moves a scale by 0.31 sd (10.3 MCSE, 2 over).
    """
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


def test_the_summaries_mcse_and_r_hat_are_arviz():
    """The script's ESS (hence MCSE) and split r_hat equal ArviZ's on autocorrelated chains."""
    import arviz_stats

    script = _load(ROOT / "benchmarks" / "numpyro_gallery_reference.py", "numpyro_reference")
    rng = np.random.default_rng(0)
    e = rng.standard_normal((4, 1001, 2))
    x = np.zeros_like(e)
    for t in range(1, e.shape[1]):  # AR(1), phi 0.8 and -0.3; a chain offset in the second
        x[:, t] = np.array([0.8, -0.3]) * x[:, t - 1] + e[:, t]
    x[0, :, 1] += 0.2
    mean, sd, mcse, r_hat = script.mean_mcse(x)
    for j in range(2):
        ess = float(arviz_stats.ess(x[..., j], method="mean"))
        np.testing.assert_allclose(sd[j] / np.sqrt(ess), mcse[j], rtol=1e-10)
        np.testing.assert_allclose(float(arviz_stats.rhat(x[..., j], method="split")), r_hat[j],
                                   rtol=1e-10)
    np.testing.assert_allclose(mean, x.mean((0, 1)))


def test_components_are_sorted_by_their_first_mean_whatever_the_labels():
    """global_parameters: any permutation of the components per draw gives the same output."""
    script = _load(ROOT / "benchmarks" / "numpyro_gallery_reference.py", "numpyro_reference")
    rng = np.random.default_rng(1)
    c, s, k, d = 2, 5, 3, 2
    cov = np.eye(d) + 0.5 * np.ones((d, d)) * rng.uniform(-1, 1, (c, s, k, 1, 1))
    low = np.linalg.cholesky(cov)
    low /= np.linalg.norm(low, axis=-1, keepdims=True)  # unit rows: a correlation's factor
    draws = {"weights": rng.dirichlet(np.ones(k), (c, s)), "locs": rng.normal(size=(c, s, k, d)),
             "scales": rng.uniform(0.5, 2, (c, s, k, d)), "corr_chol": low}
    perm = np.argsort(rng.uniform(size=(c, s, k)), -1)
    shuffled = {n: np.take_along_axis(v, perm.reshape(perm.shape + (1,) * (v.ndim - 3)), 2)
                for n, v in draws.items()}
    a = script.global_parameters(draws, "lkj_gaussian")
    b = script.global_parameters(shuffled, "lkj_gaussian")
    assert np.all(np.diff(a["locs"][..., 0], axis=-1) > 0)
    for n in a:
        np.testing.assert_array_equal(a[n], b[n])
    corr = (low @ np.swapaxes(low, -1, -2))[..., 1, 0]  # (C, S, K)
    np.testing.assert_allclose(np.sort(a["corr"][..., 0], -1), np.sort(corr, -1))
    ordered = script.global_parameters(
        {**a, "locs_first": a["locs"][..., 0], "locs_rest": a["locs"][..., 1:],
         "corr_chol": np.take_along_axis(low, np.argsort(draws["locs"][..., 0], -1)[
             ..., None, None], 2)}, "ordered_2d")
    np.testing.assert_allclose(ordered["locs"], a["locs"])
    np.testing.assert_allclose(ordered["corr"], a["corr"], rtol=1e-12)
