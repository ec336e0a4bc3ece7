"""The compiled small-data EM (probmix.infer.map.em_compiled) against the batched torch loop.

Oracle: the torch loop of probmix.infer.map.em_torch, itself tested against scikit-learn and
mclust (test_em.py, test_mclust_reference.py). From the same initial parameters both must
reach the same objective for every one of mclust's 14 models (and the four built-in names),
re-seed empty components, drop collapsing restarts, weight rows as counts and stop by the
same rules; the compiled M-step must minimise the same objective as the torch M-step.
"""

import warnings

import numpy as np
import pytest
import torch

import probmix
from mclust_data import load
from probmix.infer.map import em_compiled
from probmix.model._constrained_kernel import constrained, symmetric_eigen
from probmix.model.parsimonious import MODELS, constrained_covariances, objective


def _csv(name):
    """The numeric features of a reference data set (its ``class`` column dropped)."""
    return load(name)[0]


def _both(x, k, covariance, **options):
    """The same fit by the torch loop and by the kernel."""
    model = probmix.GaussianMixture(k, covariance=covariance, prior="flat")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow = probmix.fit(model, x, compiled=False, **options)
        fast = probmix.fit(model, x, compiled=True, **options)
    return slow, fast


def _sorted_means(fit):
    return fit.means[np.lexsort(fit.means.T[::-1])]


@pytest.mark.parametrize("covariance", MODELS + ("full", "diag", "spherical", "tied"))
@pytest.mark.parametrize("k", [1, 3])
def test_kernel_reaches_the_torch_loops_optimum(covariance, k):
    x = _csv("iris")
    slow, fast = _both(x, k, covariance, seed=1)
    # both stop within tol = 1e-8 nats per point of the mode (Aitken): EVE/VVE's inner sweeps
    # take slightly different paths, so the stops differ by up to 6e-10 per point
    assert abs(slow.lower_bounds[-1] - fast.lower_bounds[-1]) < 1e-9
    assert slow.converged and fast.converged
    assert np.all(np.diff(fast.lower_bounds) >= -1e-12)  # EM never decreases the objective
    assert abs(slow.score(x) - fast.score(x)) < 1e-9
    assert fast.covariances.shape == slow.covariances.shape  # the family's native shape
    assert np.allclose(_sorted_means(slow), _sorted_means(fast), atol=1e-5)


@pytest.mark.parametrize("stop", ["aitken", "change"])
def test_same_iterations_from_one_given_start(stop):
    x = _csv("faithful")
    rng = np.random.default_rng(0)
    init = {"weights": np.full(3, 1 / 3), "means": x[rng.choice(len(x), 3, replace=False)],
            "covariances": np.stack([np.cov(x.T)] * 3)}
    slow, fast = _both(x, 3, "VVV", init=init, stop=stop, tol=1e-6)
    assert slow.n_iter == fast.n_iter
    assert np.allclose(slow.lower_bounds, fast.lower_bounds, rtol=0, atol=1e-12)
    assert np.allclose(slow.covariances, fast.covariances, atol=1e-9)


def test_empty_component_is_reseeded_as_in_torch():
    x = _csv("faithful")
    init = {"weights": np.full(3, 1 / 3), "means": np.array([x[0], x[100], [1e4, 1e4]]),
            "covariances": np.stack([np.cov(x.T)] * 3)}
    slow, fast = _both(x, 3, "VVV", init=init, max_iter=300)
    assert fast.weights.min() > 0.05 and np.abs(fast.means).max() < 200
    assert slow.n_iter == fast.n_iter
    assert abs(slow.lower_bounds[-1] - fast.lower_bounds[-1]) < 1e-10


def test_row_weights_act_as_counts():
    x = _csv("faithful")[:120]
    counts = np.random.default_rng(3).integers(1, 4, len(x))
    model = probmix.GaussianMixture(2, covariance="VEV", prior="flat")
    weighted = probmix.fit(model, x, sample_weight=counts.astype(float), compiled=True)
    repeated = probmix.fit(model, np.repeat(x, counts, axis=0), compiled=True)
    torch_fit = probmix.fit(model, x, sample_weight=counts.astype(float), compiled=False)
    assert abs(weighted.score(np.repeat(x, counts, axis=0)) - repeated.score(
        np.repeat(x, counts, axis=0))) < 1e-8
    assert abs(weighted.lower_bounds[-1] - torch_fit.lower_bounds[-1]) < 1e-10


def test_collapsing_restarts_are_dropped_as_in_torch():
    # five copies of one row: a component that takes them is held up by the ridge alone
    from probmix.infer.map import em_steps, em_torch
    from probmix.infer.map.em_steps import PreparedData
    from probmix.model.covariance import get_family

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(200, 2)), np.tile([[6.0, 6.0]], (5, 1))])
    family = get_family("VVV")
    data = PreparedData(torch.as_tensor(x), family)
    xs = data.x
    weights = torch.full((2, 3), 1 / 3, dtype=torch.float64)
    means = torch.stack([torch.stack([xs[0], xs[50], xs[-1]]), torch.stack([xs[0], xs[50], xs[100]])])
    cov = 0.5 * torch.eye(2, dtype=torch.float64).expand(2, 3, 2, 2).clone()
    cov[0, 2] = 1e-3 * torch.eye(2)
    ok = torch.ones(2, dtype=torch.bool)
    loop = dict(reg_s=1e-6 * torch.ones(2, dtype=torch.float64), min_count=1e-3, max_iter=200,
                tol=1e-8, stop="aitken", check_held=True)
    model = probmix.GaussianMixture(3, covariance="VVV", prior="flat")
    prec_chol = em_steps.factorise(family, cov)[0]
    slow = em_torch.iterate(model, data, None, None, weights, means, cov, prec_chol, ok,
                            progress=False, **loop)
    run = em_compiled.start_run(data, family, weights, means, cov, ok, **loop)
    run.advance()
    fast = em_compiled.finish_run(run, family)
    held, n_iter, history = 6, 5, 7
    assert slow[held].all() and torch.equal(slow[held], fast[held])
    assert torch.equal(slow[n_iter], fast[n_iter])
    assert slow[history].shape == fast[history].shape
    assert torch.allclose(slow[history], fast[history], rtol=0, atol=1e-9)


def test_auto_uses_the_kernel_only_when_it_can_serve_the_fit(monkeypatch):
    from probmix.infer.map.em_steps import PreparedData
    from probmix.model.covariance import get_family

    x = torch.as_tensor(_csv("iris"))
    family = get_family("VEV")
    data = PreparedData(x, family)
    monkeypatch.setattr(em_compiled, "ready", lambda: True)
    assert em_compiled.applies(data, family, None, 6, 3)
    assert not em_compiled.applies(data, family, object(), 6, 3)  # a prior: torch
    assert not em_compiled.applies(PreparedData(x.float(), family), family, None, 6, 3)
    assert not em_compiled.applies(data, family, None, 6, 3, compiled=False)
    big = em_compiled.MAX_WORK  # more work per iteration than the kernel is for
    assert not em_compiled.applies(data, family, None, big, 3)
    assert em_compiled.applies(data, family, None, big, 3, compiled=True)
    monkeypatch.setattr(em_compiled, "ready", lambda: False)  # never waits for a compilation
    assert not em_compiled.applies(data, family, None, 6, 3)
    monkeypatch.setenv("PROBMIX_COMPILED_EM", "0")
    assert not em_compiled.applies(data, family, None, 6, 3, compiled=True)


def test_bad_compiled_option_is_named():
    with pytest.raises(ValueError, match="compiled"):
        probmix.fit(probmix.GaussianMixture(2, prior="flat"), _csv("faithful"), compiled="yes")


@pytest.mark.parametrize("code", range(len(MODELS)))
def test_compiled_m_step_minimises_the_same_objective(code):
    g = torch.Generator().manual_seed(code)
    k, d = 3, 4
    a = torch.randn(k, 30, d, generator=g, dtype=torch.float64) * torch.tensor(
        [2.0, 1.0, 0.5, 0.2], dtype=torch.float64)
    scatter = a.mT @ a
    counts = torch.tensor([30.0, 45.0, 12.0], dtype=torch.float64)
    start = constrained_covariances(MODELS[code], scatter, counts)
    expected = constrained_covariances(MODELS[code], scatter, counts, start=start)
    out = np.empty((k, d, d))
    bases = np.broadcast_to(np.eye(d), (k, d, d)).copy()
    constrained(code, scatter.numpy().copy(), counts.numpy().copy(), start.numpy().copy(), out,
                bases)
    got = objective(torch.from_numpy(out), scatter, counts)
    want = objective(expected, scatter, counts)
    assert abs(float(got - want)) <= 1e-9 * abs(float(want))
    if MODELS[code] not in ("EVE", "VVE"):  # unique minimisers: the same matrices
        assert np.allclose(out, expected.numpy(), rtol=1e-7, atol=1e-10)
        # from the eigenvectors it left in ``bases`` (EM's next M-step): the same again
        again = np.empty((k, d, d))
        constrained(code, scatter.numpy().copy(), counts.numpy().copy(), start.numpy().copy(),
                    again, bases)
        assert np.allclose(again, out, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 5, 13])
def test_symmetric_eigen_equals_lapack(d):
    rng = np.random.default_rng(d)
    a = rng.normal(size=(d, d))
    a = a @ a.T
    values, vectors = np.empty(d), np.empty((d, d))
    symmetric_eigen(a, values, vectors)
    assert np.allclose(values, np.linalg.eigvalsh(a), atol=1e-12 * np.abs(a).max())
    assert np.allclose(vectors @ np.diag(values) @ vectors.T, a, atol=1e-12 * np.abs(a).max())
    assert np.allclose(vectors.T @ vectors, np.eye(d), atol=1e-12)


def test_partitions_as_init_equal_the_auto_start():
    """select computes the "auto" partitions once per K and passes them as ``init``: the
    fits equal those that compute their own starts."""
    from probmix.infer.map.em_init import initial_partitions
    from probmix.infer.map.em_steps import PreparedData
    from probmix.model.covariance import get_family

    x = _csv("iris")
    data = PreparedData(torch.as_tensor(x), get_family("spherical"))
    labels = initial_partitions("auto", data, 3, 5, 0).numpy()
    assert labels.shape == (7, len(x))  # Ward's and the VVV tree's, and five k-means++
    model = probmix.GaussianMixture(3, covariance="VVE", prior="flat")
    own = probmix.fit(model, x, seed=0)
    given = probmix.fit(model, x, init=labels, seed=0)
    assert given.options["init"] == "partition" and given.options["n_init"] == 7
    assert given.lower_bounds[-1] == own.lower_bounds[-1]
    assert np.array_equal(given.means, own.means)
    with pytest.raises(ValueError, match="0..2"):
        probmix.fit(model, x, init=np.full(len(x), 3))
    with pytest.raises(ValueError, match=r"\(N,\) or \(R, N\)"):
        probmix.fit(model, x, init=np.zeros(len(x) - 1, dtype=int))


def test_a_cached_kernel_older_than_its_callees_is_dropped(tmp_path):
    """numba keys a cache on the kernel's own file: the guard empties it when a callee's file
    is newer (else the kernel would run the callee's old code after an edit)."""
    import os
    import sys
    import types

    from probmix._numba_cache import drop_stale

    module = tmp_path / "kernel_for_cache_test.py"
    module.write_text("from numba import njit\n\n@njit(cache=True)\ndef twice(v):\n"
                      "    return 2 * v\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import kernel_for_cache_test as kernel
    finally:
        sys.path.remove(str(tmp_path))
    assert kernel.twice(2.0) == 4.0  # compiled and cached
    index = kernel.twice._cache._cache_file._index_path
    assert os.path.exists(index)
    callee = tmp_path / "callee.py"
    callee.write_text("")
    os.utime(callee, (os.path.getmtime(index) - 10,) * 2)
    assert not drop_stale(kernel.twice, types.SimpleNamespace(__file__=str(callee)))
    os.utime(callee, (os.path.getmtime(index) + 10,) * 2)
    assert drop_stale(kernel.twice, types.SimpleNamespace(__file__=str(callee)))
    assert not kernel.twice._cache._cache_file._load_index()  # emptied: recompiles next time


def test_restarts_split_over_threads_give_the_same_fit():
    x = _csv("faithful")
    model = probmix.GaussianMixture(4, covariance="VEV", prior="flat")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = probmix.fit(model, x, compiled=True, seed=3)
        torch.set_num_threads(3)  # 7 restarts in groups of 2, 2 and 3
        split = probmix.fit(model, x, compiled=True, seed=3)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(alone.lower_bounds, split.lower_bounds)
    assert np.array_equal(alone.covariances, split.covariances)


@pytest.mark.parametrize("compiled", [False, True])
def test_every_restart_on_the_ridge_is_said_so(compiled):
    """Wine's VVE with 8 components: every restart collapses a component onto the ridge; the
    warning says that, not 'did not converge in max_iter'."""
    x = _csv("wine")
    with pytest.warns(probmix.ConvergenceWarning, match="ridge alone") as caught:
        fit = probmix.fit(probmix.GaussianMixture(8, covariance="VVE", prior="flat"), x,
                          stop="change", tol=1e-5, compiled=compiled)
    assert fit.options["ridge_held"] and not fit.converged
    assert not any("max_iter" in str(w.message) for w in caught)


def test_the_fit_records_which_loop_ran():
    x = _csv("faithful")
    model = probmix.GaussianMixture(2, covariance="EEV", prior="flat")
    assert probmix.fit(model, x, compiled=True).options["compiled"] is True
    assert probmix.fit(model, x, compiled=False).options["compiled"] is False
    prior = probmix.GaussianMixture(2, covariance="EEV")  # the default prior: torch
    assert probmix.fit(prior, x, compiled=True).options["compiled"] is False


def test_the_kernels_exp_equals_numpys():
    """The vectorised exp of the E-step: within 2 units in the last place of numpy.exp on
    [-600, 0], exactly 0 at and below -600 (and 1 at 0)."""
    from probmix.infer.map._e_step_kernel import exp_nonpositive

    rng = np.random.default_rng(0)
    v = np.concatenate([-rng.exponential(5.0, 50_000), -rng.uniform(0.0, 700.0, 50_000),
                        [0.0, -1e-300, -0.5 * np.log(2), -599.999, -600.0, -600.001, -745.0]])
    out = v.copy()
    exp_nonpositive(out, np.empty(len(v), np.int64))
    expected = np.where(v > -600.0, np.exp(v), 0.0)
    assert np.array_equal(out == 0.0, expected == 0.0)
    close = expected > 0
    assert np.max(np.abs(out[close] / expected[close] - 1.0)) <= 2 * np.finfo(float).eps
    assert out[len(v) - 7] == 1.0


@pytest.mark.parametrize("code", range(len(MODELS)))
@pytest.mark.parametrize("d", [4, 9])
def test_first_m_step_in_the_kernel_minimises_the_same_objective(code, d):
    """EM's first M-step (no current covariances) in the kernel, as fit_em and select run it
    on small data: the objective of the torch M-step from no start (EVE/VVE: the best of
    K + 1 orientation starts), and the same matrices where the minimiser is unique."""
    from probmix.model._constrained_cold_kernel import constrained_cold

    g = torch.Generator().manual_seed(100 + code + d)
    k = 4
    spread = torch.logspace(0.5, -1.0, d, dtype=torch.float64)
    a = torch.randn(k, 40, d, generator=g, dtype=torch.float64) * spread
    a = a @ torch.linalg.qr(torch.randn(k, d, d, generator=g, dtype=torch.float64))[0]
    scatter = a.mT @ a
    counts = torch.tensor([40.0, 25.0, 60.0, 15.0], dtype=torch.float64)
    expected = constrained_covariances(MODELS[code], scatter, counts)
    out = np.empty((k, d, d))
    bases = np.broadcast_to(np.eye(d), (k, d, d)).copy()
    constrained_cold(code, scatter.numpy().copy(), counts.numpy().copy(), out, bases)
    got = objective(torch.from_numpy(out), scatter, counts)
    want = objective(expected, scatter, counts)
    assert abs(float(got - want)) <= 1e-9 * abs(float(want)), (float(got), float(want))
    if MODELS[code] not in ("EVE", "VVE"):
        assert np.allclose(out, expected.numpy(), rtol=1e-7, atol=1e-10)
    else:  # bases[0]: the final common orientation, whose columns diagonalise every Σ_k
        rotated = bases[0].T @ out @ bases[0]
        off = rotated - np.einsum("kii->ki", rotated)[:, :, None] * np.eye(d)
        assert np.abs(off).max() <= 1e-8 * np.abs(rotated).max()
