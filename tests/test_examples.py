"""The examples run as scripts (``--fast``) and demonstrate what they say they demonstrate.

Each script runs once, as ``__main__`` with ``--fast`` in a temporary working directory
(its default output folder is then a temporary folder there); the property tests read the
``results`` its ``__main__`` block keeps.
"""

import runpy
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


@pytest.fixture(scope="module")
def run_example(tmp_path_factory):
    """run_example(name) -> the script's globals after ``python examples/NAME --fast``."""
    cache = {}

    def run(name):
        if name not in cache:
            work = tmp_path_factory.mktemp(Path(name).stem)
            with pytest.MonkeyPatch.context() as mp:
                mp.chdir(work)
                mp.setattr(tempfile, "tempdir", str(work))
                mp.setattr(sys, "argv", [str(EXAMPLES / name), "--fast"])
                cache[name] = runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        return cache[name]

    return run


def _load(name):
    """The script's functions, without running it."""
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs_in_fast_mode(script, run_example):
    namespace = run_example(script.name)
    results = namespace.get("results")
    if isinstance(results, dict) and "files" in results:  # the examples that write figures
        for path in results["files"]:
            assert Path(path).stat().st_size > 0, path


# ----------------------------------------------------------------------------- sklearn walkthrough


def test_sklearn_walkthrough_recovers_the_source(run_example):
    r = run_example("walkthrough_sklearn.py")["results"]
    assert r["agreement"]["GMM (EM)"] > 0.98
    assert r["agreement"]["variational GMM"] > 0.98
    assert r["agreement"]["KMeans"] > 0.95
    np.testing.assert_allclose(r["weights"], 1 / 3, atol=0.02)
    # the variational posterior has uncertainty, of the order sd/sqrt(n) for 200 points
    assert np.all(r["vgmm_mean_sd"] > 0.01) and np.all(r["vgmm_mean_sd"] < 0.3)


# ----------------------------------------------------------------------------- mean shift


def test_meanshift_walkthrough_finds_the_seven_centres(run_example):
    r = run_example("walkthrough_meanshift.py")["results"]
    assert len(r["centres"]) == 7
    assert r["centre_errors"].max() < 1.5          # 80 points of sd 2.2 per blob in --fast
    assert r["ari"] > 0.99
    table = r["bandwidth_table"]
    assert table["h = 2 (article)"]["modes"] == 7
    assert table["estimate_bandwidth (quantile 0.3)"]["modes"] == 1   # the default spans blobs
    assert table["estimate_bandwidth(quantile=0.05)"]["modes"] == 7


def test_batched_loop_equals_probmix_path(run_example):
    r = run_example("walkthrough_meanshift.py")["results"]
    assert len(r["batched"]) >= 2
    for batch in r["batched"].values():
        # equal up to the seeds probmix freezes once their step is below 1e-3 h (h = 2)
        assert batch["max_diff_to_probmix"] < 1e-2


def test_neither_kmeans_nor_meanshift_recovers_rings(run_example):
    shapes = run_example("walkthrough_meanshift.py")["results"]["shapes"]
    assert abs(shapes["circles"]["KMeans(2)"]["ari"]) < 0.1
    for name in ("circles", "moons"):
        narrow = shapes[name]["MeanShift(h=0.1)"]
        assert narrow["clusters"] > 2 and narrow["purity"] > 0.97   # pure fragments


def test_shape_generators_match_scikit_learn():
    datasets = pytest.importorskip("sklearn.datasets")
    ns = _load("walkthrough_meanshift.py")
    for n in (7, 10):
        x, y = ns["make_circles"](n, factor=0.5, noise=0.0, seed=0)
        xs, ys = datasets.make_circles(n, shuffle=False, noise=None, factor=0.5)
        np.testing.assert_allclose(x, xs, atol=1e-12)
        np.testing.assert_array_equal(y, ys)
        x, y = ns["make_moons"](n, noise=0.0, seed=0)
        xs, ys = datasets.make_moons(n, shuffle=False, noise=None)
        np.testing.assert_allclose(x, xs, atol=1e-12)
        np.testing.assert_array_equal(y, ys)


def test_adjusted_rand_index_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    ari = _load("walkthrough_meanshift.py")["adjusted_rand_index"]
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 4, 60), rng.integers(0, 3, 60)
        b[:30] = a[:30]
        assert ari(a, b) == pytest.approx(metrics.adjusted_rand_score(a, b), abs=1e-12)
    assert ari([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0


# ----------------------------------------------------------------------------- MAP vs VI vs MCMC


def test_map_vi_mcmc_uncertainty(run_example):
    r = run_example("map_vi_mcmc.py")["results"]
    table, ratio = r["table"], r["sd_ratio_to_gibbs"]
    assert np.all(table["MAP (EM)"]["sd"] == 0)
    for name in ("CAVI", "SVI", "Gibbs", "NUTS"):
        assert np.all(table[name]["sd"] > 0), name
        assert np.all(table[name]["lo"] < table[name]["hi"]), name
    # mean-field VI is too narrow for the overlapping components 0 and 1, not for 2
    assert np.median(ratio["CAVI"][:2]) < 0.8
    assert 0.7 < np.median(ratio["CAVI"][2]) < 1.3
    # the two samplers agree (short --fast chains: a loose band)
    assert 0.6 < np.median(ratio["NUTS"]) < 1.6
    # every engine's posterior mean of the separate component is near the truth (1, 5)
    for name, t in table.items():
        np.testing.assert_allclose(t["mean"][2], [1.0, 5.0], atol=0.3, err_msg=name)


# ----------------------------------------------------------------------------- choosing K


def test_choosing_k_finds_the_true_k(run_example):
    r = run_example("choosing_k.py")["results"]
    assert r["bic_k"] == 4
    assert r["loo_one_se_k"] == 4
    assert r["dp_effective"] == {"CAVI": 4, "Gibbs": 4}
    assert sum(r["dp_posterior_k"].values()) == pytest.approx(1.0)
    assert min(r["dp_posterior_k"]) >= 4      # no draw merges two of the four clusters
