"""The fused CPU kernels (numba) against the torch code they replace, and their invariants."""

import numpy as np
import pytest
import torch

from probmix.baselines import fused
from probmix.baselines.kmeans import KMeans, lloyd

pytestmark = pytest.mark.skipif(fused._load() is None, reason="numba not installed")


@pytest.fixture(autouse=True)
def _kernels_at_any_size(monkeypatch):
    """The tests' small data would run the torch code under the size rule: force the kernels."""
    monkeypatch.setenv("PROBMIX_FUSED", "1")


def _blobs(n, d, k, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    return (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(dtype)


def _both(monkeypatch, fn):
    """fn() with the fused kernels, then with the torch code."""
    with_fused = fn()
    monkeypatch.setenv("PROBMIX_FUSED", "0")
    plain = fn()
    monkeypatch.setenv("PROBMIX_FUSED", "1")
    return with_fused, plain


@pytest.mark.parametrize("n,d,k,r", [(5000, 2, 5, 1), (3000, 10, 7, 3), (2000, 1, 1, 1),
                                     (1500, 33, 20, 2)])
@pytest.mark.parametrize("weighted", [False, True])
def test_lloyd_same_as_torch_code(monkeypatch, n, d, k, r, weighted):
    x = torch.as_tensor(_blobs(n, d, k))
    rng = np.random.default_rng(1)
    init = x[torch.as_tensor(rng.choice(n, (r, k)))]  # (R, K, D) rows of x
    w = torch.as_tensor(rng.integers(0, 4, n).astype(float)) if weighted else None
    (lab_f, c_f, in_f, it_f, _), (lab_t, c_t, in_t, it_t, _) = _both(
        monkeypatch, lambda: lloyd(x, init, sample_weight=w, max_iter=30, tol=0))
    assert it_f == it_t
    assert torch.equal(lab_f, lab_t)
    torch.testing.assert_close(c_f, c_t, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(in_f, in_t, rtol=1e-12, atol=0)


def test_float32_same_labels_as_torch_code(monkeypatch):
    x = torch.as_tensor(_blobs(4000, 3, 4, dtype=np.float32))
    init = x[:4]
    (lab_f, c_f, *_), (lab_t, c_t, *_) = _both(monkeypatch, lambda: lloyd(x, init, max_iter=20))
    assert c_f.dtype == torch.float32
    assert (lab_f == lab_t).float().mean() > 0.999
    torch.testing.assert_close(c_f, c_t, rtol=1e-4, atol=1e-4)


def test_empty_clusters_are_relocated_like_the_torch_code(monkeypatch):
    # two far-away centres start where no point is nearest: both get relocated
    x = torch.as_tensor(_blobs(3000, 2, 3))
    init = torch.cat([x[:3], torch.full((2, 2), 1e3, dtype=x.dtype)])
    (lab_f, c_f, in_f, *_), (lab_t, c_t, in_t, *_) = _both(
        monkeypatch, lambda: lloyd(x, init, max_iter=1, tol=0))
    assert torch.equal(lab_f, lab_t)
    torch.testing.assert_close(c_f, c_t, rtol=1e-12, atol=1e-12)
    assert bool((c_f.abs() < 100).all())  # nobody is left at 1e3


def test_predict_same_as_torch_code(monkeypatch):
    x = _blobs(6000, 4, 6)
    km = KMeans(6, seed=0).fit(x)
    new = _blobs(5000, 4, 6, seed=3)
    fused_labels, plain_labels = _both(monkeypatch, lambda: km.predict(new))
    np.testing.assert_array_equal(fused_labels, plain_labels)


def test_result_does_not_depend_on_thread_count():
    numba = pytest.importorskip("numba")
    x = torch.as_tensor(_blobs(200_000, 3, 5))
    init = x[:5]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = lloyd(x, init, max_iter=5, tol=0)
        torch.set_num_threads(max(2, min(4, numba.config.NUMBA_NUM_THREADS)))
        many = lloyd(x, init, max_iter=5, tol=0)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[1], many[1])  # bit for bit: chunking is fixed by (N, R, K, D)
    assert torch.equal(one[2], many[2])


@pytest.mark.parametrize("n,r,k,d", [(1, 1, 1, 1), (10**6, 1, 5, 2), (10**5, 10, 10, 10),
                                     (10**7, 8, 500, 100), (300, 1, 2000, 200)])
def test_layout_covers_every_row_and_bounds_memory(n, r, k, d):
    block, chunk, n_chunks = fused.layout(n, r, k, d)
    assert 16 <= block <= 256 and chunk % block == 0
    assert (n_chunks - 1) * chunk < n <= n_chunks * chunk
    assert n_chunks == 1 or n_chunks * r * k * (d + 1) <= fused._PARTIAL_ELEMENTS
    assert block * d * k <= fused._SINGLE_THREAD_GEMM or block == 16


def test_enabled_only_where_the_kernels_apply(monkeypatch):
    x = torch.zeros(3, 2, dtype=torch.float64)
    assert fused.enabled(x)
    assert not fused.enabled(x.to(torch.int64))
    assert not fused.enabled(x.requires_grad_())
    monkeypatch.setenv("PROBMIX_FUSED", "0")
    assert not fused.enabled(torch.zeros(3, 2))


def test_size_rule_keeps_small_data_on_the_torch_code(monkeypatch):
    # unset: the kernels (and their compile) only from _MIN_ELEMENTS values on
    monkeypatch.delenv("PROBMIX_FUSED")
    n = fused._MIN_ELEMENTS // 4
    assert not fused.enabled(torch.zeros(n - 1, 4, dtype=torch.float64))
    assert fused.enabled(torch.zeros(n, 4, dtype=torch.float64))
    assert fused.enabled(torch.zeros(600, 2, dtype=torch.float64), work=600 * 600)  # mean shift
    monkeypatch.setenv("PROBMIX_FUSED", "1")
    assert fused.enabled(torch.zeros(3, 2, dtype=torch.float64))


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("bin_seeding", [False, True])
def test_meanshift_same_as_torch_code(monkeypatch, kernel, bin_seeding):
    from probmix.baselines.meanshift import MeanShift

    x = _blobs(1200, 2, 4, seed=5)

    def run():
        m = MeanShift(bandwidth=2.0, kernel=kernel, bin_seeding=bin_seeding).fit(x)
        return m.cluster_centers_, m.labels_, m.n_iter_

    (c_f, lab_f, it_f), (c_t, lab_t, it_t) = _both(monkeypatch, run)
    assert c_f.shape == c_t.shape
    np.testing.assert_allclose(c_f, c_t, atol=1e-9)
    np.testing.assert_array_equal(lab_f, lab_t)
    assert it_f == it_t


def test_meanshift_path_agrees_with_the_fused_ascent():
    # keep_path runs the torch code; its last positions are the fused ascent's modes
    from probmix.baselines.meanshift import MeanShift

    x = _blobs(800, 3, 3, seed=2)
    fast = MeanShift(bandwidth=2.5, kernel="flat").fit(x)
    traced = MeanShift(bandwidth=2.5, kernel="flat", keep_path=True).fit(x)
    np.testing.assert_allclose(fast.cluster_centers_, traced.cluster_centers_, atol=1e-9)
    assert fast.n_iter_ == traced.n_iter_ == traced.path_.shape[0] - 1


def test_unique_rows_matches_torch_unique():
    from probmix.baselines.meanshift_ascent import _unique_rows

    gen = torch.Generator().manual_seed(0)
    for d in (1, 2, 3, 6):
        cells = torch.randint(-40, 41, (3000, d), generator=gen).double()
        got, counts = _unique_rows(cells)
        want, want_counts = torch.unique(cells, dim=0, return_counts=True)
        assert torch.equal(got, want) and torch.equal(counts, want_counts)
    huge = torch.tensor([[1e300, 0.0], [1e300, 0.0], [-3.0, 2.0]], dtype=torch.float64)
    got, counts = _unique_rows(huge)  # ranges beyond 62 bits: the 2-D unique serves
    assert torch.equal(got, huge[[2, 0]]) and counts.tolist() == [1, 2]


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_same_as_torch_code(monkeypatch, weighted):
    from probmix.baselines.kmeans import kmeans_plusplus

    x = torch.as_tensor(_blobs(4000, 7, 6, seed=4))
    w = torch.as_tensor(np.random.default_rng(0).integers(0, 3, 4000).astype(float)) \
        if weighted else None

    def run():
        gen = torch.Generator().manual_seed(11)
        return kmeans_plusplus(x, 6, n_init=3, sample_weight=w, generator=gen)

    fused_centres, plain_centres = _both(monkeypatch, run)
    assert torch.equal(fused_centres, plain_centres)  # the same rows chosen


def test_kmeans_plusplus_without_the_kept_distances_chooses_the_same(monkeypatch):
    # beyond _KPP_KEEP_BYTES the winner's distances come from a second pass instead
    import probmix.baselines.kmeans_init as km

    x = torch.as_tensor(_blobs(3000, 5, 4, seed=6))

    def run():
        return km.kmeans_plusplus(x, 4, n_init=2, generator=torch.Generator().manual_seed(3))

    kept = run()
    monkeypatch.setattr(km, "_KPP_KEEP_BYTES", 0)
    assert torch.equal(run(), kept)


def test_weighted_lloyd_with_huge_centres_falls_back_correctly():
    # centres above 1e100 leave the kernels for the rescaling torch code, which must still
    # weigh the rows: the fit of x * 1e120 is the fit of x, scaled
    x = torch.as_tensor(_blobs(400, 2, 2, seed=8))
    w = torch.as_tensor(np.random.default_rng(8).integers(1, 4, 400).astype(float))
    init = x[[0, 1]]
    small = lloyd(x, init, sample_weight=w, max_iter=5, tol=0)
    huge = lloyd(x * 1e120, init * 1e120, sample_weight=w, max_iter=5, tol=0)
    assert torch.equal(small[0], huge[0])
    torch.testing.assert_close(huge[1] / 1e120, small[1], rtol=1e-10, atol=1e-10)
