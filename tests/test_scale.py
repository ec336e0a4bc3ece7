"""Scale (issue 8): streaming EM and k-means equal the in-memory fits; torchrun shards equal one
process; online EM and mini-batch k-means approach the batch answers; float32 agrees with float64.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import probmix
from probmix.io.scan import scan
from probmix.io.sources import as_source

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("full", "diag", "spherical", "tied")


@pytest.fixture(scope="module")
def data():
    x, _ = probmix.three_clusters(1500, seed=1)
    return np.asarray(x)[np.random.default_rng(0).permutation(4500)]


def _start(x, family):
    """Initial parameters away from the optimum, so that every fit takes several EM steps."""
    model = probmix.GaussianMixture(3, covariance=family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        return {k: v for k, v in probmix.fit(model, x, engine="map", max_iter=1).params.items()}


def _fit(model, x, init, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probmix.ConvergenceWarning)
        return probmix.fit(model, x, engine="map", init=init, max_iter=25, tol=0.0, **options)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prior", ["flat", "default"])
def test_streaming_em_equals_in_memory_em(data, family, prior, tmp_path):
    model = probmix.GaussianMixture(3, covariance=family, prior=prior)
    init = _start(data, family)
    memory = _fit(model, data, init)
    np.save(tmp_path / "x.npy", data)
    sources = {"npy path": tmp_path / "x.npy", "list": [data[:1000], data[1000:3333], data[3333:]],
               "callable": lambda: iter(np.array_split(data, 7))}
    for name, source in sources.items():
        streamed = _fit(model, source, init, chunk_size=512)
        for key in memory.params:
            np.testing.assert_allclose(streamed.params[key], memory.params[key], rtol=0,
                                       atol=1e-10, err_msg=f"{name}: {key}")
        np.testing.assert_allclose(streamed.lower_bounds, memory.lower_bounds, rtol=0, atol=1e-10)
        assert streamed.options["chunk_size"] == 512


def test_streaming_em_reads_hdf5(data, tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=data, chunks=(500, 2))
    model = probmix.GaussianMixture(3)
    init = _start(data, "full")
    with h5py.File(tmp_path / "x.h5", "r") as f:
        streamed = _fit(model, f["x"], init, chunk_size=1000)
    np.testing.assert_allclose(streamed.means, _fit(model, data, init).means, atol=1e-10)


def test_scan_moments_and_sample_are_exact(data):
    found = scan(as_source(data, chunk_size=333).chunks(), sample_size=100, seed=0)
    np.testing.assert_allclose(found.mean.numpy(), data.mean(0), atol=1e-12)
    np.testing.assert_allclose(found.cov.numpy(), np.cov(data.T), atol=1e-11)
    assert found.n == len(data) and found.sample.shape == (100, 2)
    rows = {tuple(r) for r in data}
    assert all(tuple(r) in rows for r in found.sample.numpy())  # actual rows, no duplicates
    assert len({tuple(r) for r in found.sample.numpy()}) == 100


def test_streaming_default_init_fits_well(data):
    model = probmix.GaussianMixture(3)
    fit = probmix.fit(model, [data[:2000], data[2000:]], engine="map", seed=0, chunk_size=700)
    ref = probmix.fit(model, data, engine="map", seed=0)
    assert fit.score(data) == pytest.approx(ref.score(data), abs=1e-6)


def test_one_shot_iterator_is_refused_by_exact_em_with_the_fix(data):
    with pytest.raises(ValueError, match="online"):
        probmix.fit(probmix.GaussianMixture(3), iter(np.array_split(data, 5)), engine="map")


def test_online_em_in_one_pass_approaches_batch_em():
    x, _ = probmix.three_clusters(10000, seed=2)
    x = np.asarray(x)[np.random.default_rng(1).permutation(30000)]
    model = probmix.GaussianMixture(3)
    batch = probmix.fit(model, x, engine="map", seed=0)
    online = probmix.fit(model, iter(np.array_split(x, 30)), engine="map", method="online",
                         chunk_size=1000, n_total=len(x))
    a, b = np.argsort(batch.means[:, 0]), np.argsort(online.means[:, 0])
    assert np.abs(batch.means[a] - online.means[b]).max() < 0.1
    assert np.abs(batch.weights[a] - online.weights[b]).max() < 0.02
    assert online.score(x) > batch.score(x) - 0.01
    assert online.n_iter == 21  # the first 10 chunks (init_size rows) at once, then 20 chunks


def test_streaming_kmeans_equals_in_memory_kmeans(data, tmp_path):
    init = data[[0, 1, 2, 3, 4]]
    memory = probmix.KMeans(5, init=init).fit(data)
    np.save(tmp_path / "x.npy", data)
    streamed = probmix.KMeans(5, init=init).fit(tmp_path / "x.npy", chunk_size=600)
    np.testing.assert_allclose(streamed.cluster_centers_, memory.cluster_centers_, atol=1e-10)
    assert streamed.inertia_ == pytest.approx(memory.inertia_, rel=1e-12)
    assert streamed.n_iter_ == memory.n_iter_ and streamed.labels_ is None
    chunked = probmix.KMeans(5, init=init).fit(data, chunk_size=600)  # in memory: labels kept
    np.testing.assert_array_equal(chunked.labels_, memory.labels_)


def test_minibatch_kmeans_is_close_to_lloyd(data):
    lloyd = probmix.KMeans(3, seed=0, n_init=3).fit(data)
    mini = probmix.MiniBatchKMeans(3, batch_size=256, seed=0).fit(data)
    assert ((data[:, None] - mini.cluster_centers_[None]) ** 2).sum(-1).min(1).sum() \
        < 1.01 * lloyd.inertia_
    assert mini.counts_.sum() == pytest.approx(10 * len(data))
    np.testing.assert_array_equal(mini.predict(data[:5]), mini.predict(data[:5]))


@pytest.mark.parametrize("family", FAMILIES)
def test_float32_agrees_with_float64(data, family):
    model = probmix.GaussianMixture(3, covariance=family)
    init = _start(data, family)
    f64 = _fit(model, data, init)
    f32 = _fit(model, data, init, dtype=torch.float32)
    assert f32.dtype == "float32"
    np.testing.assert_allclose(f32.means, f64.means, atol=1e-4)
    np.testing.assert_allclose(f32.covariances, f64.covariances, atol=1e-4)
    np.testing.assert_allclose(f32.weights, f64.weights, atol=1e-5)
    k64 = probmix.KMeans(3, init=data[:3]).fit(data)
    k32 = probmix.KMeans(3, init=data[:3], dtype=torch.float32).fit(data)
    np.testing.assert_allclose(k32.cluster_centers_, k64.cluster_centers_, atol=1e-4)


def test_torchrun_shards_equal_one_process(data, tmp_path):
    init = {}
    for family in FAMILIES:
        init.update({f"{family}_{k}": v for k, v in _start(data, family).items()})
    init["kmeans_init"] = data[:5]
    np.save(tmp_path / "x.npy", data)
    np.savez(tmp_path / "init.npz", **init)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "tests" / "scripts" / "distributed_fit.py"), str(tmp_path / "x.npy"),
         str(tmp_path / "init.npz"), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    for key in ranks[0].files:  # every process ends with identical parameters
        if "labels" not in key:  # (labels are per shard)
            np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
    for family in FAMILIES:
        model = probmix.GaussianMixture(3, covariance=family)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", probmix.ConvergenceWarning)
            single = probmix.fit(model, data, engine="map", max_iter=20, tol=0.0, init={
                k: init[f"{family}_{k}"] for k in ("weights", "means", "covariances")})
        for key, value in single.params.items():
            np.testing.assert_allclose(ranks[0][f"{family}_{key}"], value, rtol=0, atol=1e-10)
        np.testing.assert_allclose(ranks[0][f"{family}_lower_bounds"], single.lower_bounds,
                                   rtol=0, atol=1e-10)
    km = probmix.KMeans(5, init=data[:5]).fit(data)
    np.testing.assert_allclose(ranks[0]["kmeans_centers"], km.cluster_centers_, atol=1e-10)
    assert float(ranks[0]["kmeans_inertia"]) == pytest.approx(km.inertia_, rel=1e-12)
    labels = np.concatenate([ranks[0]["kmeans_labels"], ranks[1]["kmeans_labels"]])
    np.testing.assert_array_equal(labels, km.labels_)
    # seeding across ranks (k-means++ / k-means EM init on a common sample) finds the clusters
    truth = np.sort(np.asarray(probmix.io.datasets.THREE_CLUSTERS["means"])[:, 0])
    np.testing.assert_allclose(np.sort(ranks[0]["kpp_means"][:, 0]), truth, atol=0.15)
    np.testing.assert_allclose(np.sort(ranks[0]["kpp_centers"][:, 0]), truth, atol=0.15)


@pytest.mark.slow
def test_streaming_a_2gb_file_keeps_memory_bounded(tmp_path):
    """Peak RSS of a streamed fit on a 2 GB memory-mapped file stays far below the file size."""
    path = tmp_path / "big.npy"
    write = subprocess.run(  # written by another process: its pages are not in the fit's RSS
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[2]); "
         "from streaming_memmap import write_data; write_data(sys.argv[1], 250_000_000)",
         str(path), str(ROOT / "examples")], capture_output=True, text=True, timeout=3600)
    assert write.returncode == 0, write.stderr[-2000:]
    assert path.stat().st_size > 1.9e9  # float32 × 2 columns × 250M rows
    script = (
        "import sys, resource, probmix\n"
        "fit = probmix.fit(probmix.GaussianMixture(5, prior='flat'), sys.argv[1], engine='map',\n"
        "                  chunk_size=1_000_000, max_iter=2)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                         text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-2000:]
    peak = float(out.stdout.split()[-1])
    assert peak < 1024, f"peak resident memory {peak:.0f} MB for a 2 GB file"


@pytest.mark.parametrize("engine, options, atol", [
    ("svi", dict(method="cavi"), 1e-4),                       # closed form: rounding only
    ("map", dict(method="gradient"), 1e-2),                   # L-BFGS stops at float32's tol
    # Monte Carlo: float32 draws other random streams
    ("mcmc", dict(method="gibbs", num_samples=200, num_warmup=100, num_chains=2,
                  progress=False), 0.05),
])
def test_float32_posterior_engines_agree_with_float64(engine, options, atol):
    x, _ = probmix.three_clusters(200, seed=0)
    model = probmix.GaussianMixture(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f64 = probmix.fit(model, x, engine=engine, seed=0, **options)
        f32 = probmix.fit(model, x, engine=engine, seed=0, dtype=torch.float32, **options)
    assert f32.dtype == "float32"
    a, b = np.argsort(f64.means[:, 0]), np.argsort(f32.means[:, 0])
    np.testing.assert_allclose(f32.means[b], f64.means[a], atol=atol)
    proba = f32.predict_proba(x)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1, atol=1e-5)


def test_float32_meanshift_agrees_with_float64():
    x, _ = probmix.three_clusters(200, seed=0)
    a = probmix.MeanShift(bandwidth=2.0).fit(x)
    b = probmix.MeanShift(bandwidth=2.0, dtype=torch.float32).fit(x)
    np.testing.assert_allclose(np.sort(b.cluster_centers_, 0), np.sort(a.cluster_centers_, 0),
                               atol=1e-4)
