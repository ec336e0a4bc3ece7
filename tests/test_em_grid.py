"""select's EM grid (probmix.infer.map.em_grid) and the resumable kernel run behind it.

Checks:

- a :class:`~probmix.infer.map.em_compiled.KernelRun` paused and resumed (after iteration
  budgets, and after a screening-tolerance pause) ends bitwise where one uninterrupted run
  ends: iterates, history, counters, flags and the carried state (stopping-rule trail,
  re-seeding counts, EVE/VVE eigen-bases), for direct and iterative M-steps;
- a refined :class:`~probmix.infer.map.em_grid.Grid` fit equals fit_em's fit from the same
  partitions (parameters, iterations, convergence, objective trace) whether or not it was
  screened first, and the log-likelihood it returns is the fit's score;
- the thread count changes neither screened nor refined fits;
- screening runs every restart at most SCREEN_STEPS iterations and only the leader (the best
  objective) on to the screening tolerance; screened log-likelihoods are lower bounds of the
  refined ones, and each Fit records the stopping rule it actually ran (screening: "change"
  at its tolerance; refined: "aitken");
- :func:`~probmix.infer.map.em_grid.applies` turns the grid down for options, precisions,
  devices or data it does not serve;
- ``select(..., screen=False)`` through the grid gives the per-fit path's table and pick.

The kernel is compiled once for the module (about 15 s the first time, cached on disk);
the module is skipped where ``PROBMIX_COMPILED_EM=0`` turns the kernel off.
"""

import os
import warnings

import numpy as np
import pytest
import torch

import probmix
from mclust_data import load
from probmix.infer.map import em_compiled, em_grid
from probmix.infer.map.em import checked_loop_options, start_em
from probmix.infer.map.em_grid import Grid
from probmix.results.selection_fits import shared_starts

pytestmark = pytest.mark.skipif(os.environ.get("PROBMIX_COMPILED_EM") == "0",
                                reason="PROBMIX_COMPILED_EM=0 turns the EM kernel off")
#: every array of a KernelRun's state
STATE = ("w", "m", "c", "ok", "history", "n_iter", "steps", "converged", "held", "trail",
         "reseeding", "bases")


@pytest.fixture(scope="module", autouse=True)
def kernel():
    em_compiled.compile_kernel()
    assert em_compiled.ready()


def _load(name):
    """The feature columns of a reference data set (not its ``class`` column)."""
    return load(name)[0]


def _partitions(x, k, seed=0):
    """select's shared "auto" starts for K: hard partitions (R, N)."""
    return shared_starts(torch.as_tensor(x), [k], "em", seed, {})[k]["init"]


def _run(x, covariance, k, init, *, check_held=True, **options):
    """A fresh KernelRun of fit_em's restarts from ``init`` (and the family)."""
    model = probmix.GaussianMixture(k, covariance=covariance, prior="flat")
    max_iter, tol, stop, reg_covar, seed = checked_loop_options(
        max_iter=options.get("max_iter", 1000), tol=options.get("tol"),
        stop=options.get("stop", "aitken"), reg_covar=1e-6, seed=0, compiled=True)
    begun = start_em(model, torch.as_tensor(x), init=init, n_init=None, max_iter=max_iter,
                     tol=tol, stop=stop, reg_covar=reg_covar, reg_covar_relative=True,
                     seed=seed, device=None, dtype=None, sample_weight=None, warm_start=None,
                     chunk_size=None, init_size=100_000, distributed=False, compiled=True)
    assert begun.kernel and begun.run is not None
    run = begun.run  # its first M-step done in the kernel; restarts not yet advanced
    if not check_held:  # the same restarts, without the check for ridge-held components
        loop = {**begun.loop, "check_held": False}
        if begun.weights is not None:  # given parameters
            run = em_compiled.start_run(begun.data, model.family, begun.weights, begun.means,
                                        begun.cov, begun.ok, **loop)
        else:  # partitions
            run = em_compiled.partition_run(begun.data, model.family, init, k, **loop)
    return run


def _one_at_a_time(run):
    """Advance every restart one iteration per call until none can go on."""
    calls = 0
    while True:
        run.advance(run.steps + 1)
        calls += 1
        if not run.paused.any():
            return calls


def _assert_same_state(a, b):
    for name in STATE:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("covariance", ["EVE", "VVE", "VEV", "VVV", "EII"])
def test_pause_and_resume_equals_one_run(covariance):
    x = _load("iris")
    init = _partitions(x, 3)
    whole, pieces = _run(x, covariance, 3, init), _run(x, covariance, 3, init)
    whole.advance()
    assert whole.converged.any() and whole.ok.any()
    pieces.advance(3)
    assert pieces.paused.all() and (pieces.steps == 3).all()  # every restart paused at 3
    pieces.advance(10)  # to 10 in all (or to its stop)
    np.testing.assert_array_equal(pieces.steps, np.minimum(whole.steps, 10))
    np.testing.assert_array_equal(pieces.paused, whole.steps > 10)
    budget = np.array([12, 15, 10, 20, 11, 13, 14])[:len(init)]  # a budget per restart
    pieces.advance(budget)
    assert (pieces.steps[pieces.paused] == budget[pieces.paused]).all()
    pieces.advance(screen_tol=1e-5)  # paused once the objective settles, not at an end
    assert pieces.paused.any()
    assert (pieces.steps[pieces.paused] < whole.steps[pieces.paused]).all()
    pieces.advance(threads=2)  # the rest, in two groups of restarts
    assert not pieces.paused.any()
    _assert_same_state(whole, pieces)
    # paused after every iteration: the stopping rule's trail must survive every resume
    single = _run(x, covariance, 3, init)
    assert _one_at_a_time(single) == whole.steps.max()
    _assert_same_state(whole, single)


def test_reseeding_count_survives_pauses():
    """Twenty identical rows and one far row, K = 3: restart 0's third component empties
    after every re-seeding, and the restart stops (unconverged) after RESEED_PATIENCE such
    iterations; only if the count carries over the pauses does a resumed run stop there too."""
    from probmix.infer.map.em_torch import RESEED_PATIENCE

    x = np.vstack([np.zeros((20, 2)), [[5.0, 2.5]]])
    init = {"weights": np.full((2, 3), 1 / 3),
            "means": np.array([[[0, 0], [5, 2.5], [40, 40]], [[0, 0], [0.1, 0], [5, 2.5]]]),
            "covariances": np.broadcast_to(np.eye(2), (2, 3, 2, 2)).copy()}
    whole = _run(x, "VVV", 3, init, check_held=False)
    whole.advance()
    assert whole.reseeding[0] == RESEED_PATIENCE and not whole.converged[0]
    assert whole.steps[0] < whole.max_iter
    single = _run(x, "VVV", 3, init, check_held=False)
    _one_at_a_time(single)
    _assert_same_state(whole, single)


def test_resume_after_a_finished_run_changes_nothing():
    x = _load("faithful")
    run = _run(x, "VVE", 3, _partitions(x, 3))
    run.advance()
    state = {name: getattr(run, name).copy() for name in STATE}
    run.advance()
    run.advance(screen_tol=1e-3)
    assert not run.paused.any()
    for name in STATE:
        np.testing.assert_array_equal(getattr(run, name), state[name], err_msg=name)


def _cells(families, ks):
    return [(probmix.GaussianMixture(k, covariance=fam, prior="flat"), fam, k)
            for k in ks for fam in families]


def _grid(x, cells, starts, *, screen, threads=1, **options):
    """A Grid of ``cells``, every fit started, screened (or not) and refined; returns
    (grid, screened [(Fit, loglik)] or None, refined [(Fit, loglik)])."""
    grid = Grid(torch.as_tensor(x), cells, starts, {"seed": 0, **options}, threads=threads)
    everything = list(range(len(cells)))
    assert all(grid.start(i) for i in everything)
    screened = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if screen:
            grid.screen(everything, 1e-5)
            screened = [grid.fit(i, screened=True) for i in everything]
        grid.refine(everything)
        refined = [grid.fit(i, screened=False) for i in everything]
    return grid, screened, refined


def _assert_same_fit(a, b, atol=0.0):
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=atol,
                                   err_msg=name)
    assert a.n_iter == b.n_iter and a.converged == b.converged
    np.testing.assert_allclose(a.lower_bounds, b.lower_bounds, rtol=0, atol=atol)


FAMILIES = ("EII", "VEI", "EVE", "VVV")
KS = (1, 2, 3)


@pytest.fixture(scope="module")
def iris_grids():
    """The iris grid screened then refined, and refined without screening."""
    x = _load("iris")
    starts = {k: _partitions(x, k) for k in KS}
    cells = _cells(FAMILIES, KS)
    return x, starts, cells, _grid(x, cells, starts, screen=True), \
        _grid(x, cells, starts, screen=False)


def test_refined_grid_fit_equals_fit_em(iris_grids):
    x, starts, cells, (_, _, refined), (_, _, unscreened) = iris_grids
    n = len(x)
    for (model, label, k), (fit, loglik), (alone, loglik_alone) in zip(cells, refined,
                                                                       unscreened):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = probmix.fit(probmix.GaussianMixture(k, covariance=label, prior="flat"),
                                    x, engine="map", init=starts[k], seed=0)
        assert reference.options["compiled"]
        _assert_same_fit(fit, reference, atol=1e-10)
        assert fit.options["stop"] == reference.options["stop"] == "aitken"
        assert fit.options["n_init"] == reference.options["n_init"] == len(starts[k])
        np.testing.assert_allclose(loglik, reference.score(x) * n, rtol=1e-12)
        # screening first leaves the refined fit where refining alone leaves it
        _assert_same_fit(fit, alone)
        assert loglik == loglik_alone


def test_threads_do_not_change_the_fits():
    x = _load("faithful")
    ks = (2, 3, 4)
    starts = {k: _partitions(x, k) for k in ks}
    cells = _cells(("EII", "VEV", "EVE", "VVV"), ks)
    _, screened_1, refined_1 = _grid(x, cells, starts, screen=True, threads=1)
    _, screened_2, refined_2 = _grid(x, cells, starts, screen=True, threads=2)
    for one, two in zip(screened_1 + refined_1, screened_2 + refined_2):
        _assert_same_fit(one[0], two[0])
        assert one[0].options == two[0].options
        assert one[1] == two[1]


def test_screened_values_are_lower_bounds(iris_grids):
    x, starts, cells, (grid, screened, refined), _ = iris_grids
    n = len(x)
    fewer = 0
    for (model, label, k), (rough, rough_loglik), (fit, loglik) in zip(cells, screened,
                                                                       refined):
        assert rough_loglik <= loglik + 1e-9 * n, (label, k)
        assert rough.options["stop"] == "change" and rough.options["tol"] == 1e-5
        assert rough.converged  # its leader paused at the screening tolerance (or converged)
        assert fit.options["stop"] == "aitken" and fit.options["tol"] == 1e-8
        np.testing.assert_allclose(rough_loglik, rough.score(x) * n, rtol=1e-12)
        fewer += rough.n_iter < fit.n_iter
    assert fewer > 0  # screening stopped some fit early: the bound is not trivially equal
    assert all(tol == 1e-5 for _, tol in grid.screened.values())


def test_screening_runs_the_leader_alone_past_the_first_steps():
    x = _load("iris")
    ks = (2, 3)
    starts = {k: _partitions(x, k) for k in ks}
    cells = _cells(("VVV", "EVE"), ks)
    grid = Grid(torch.as_tensor(x), cells, starts, {"seed": 0})
    assert all(grid.start(i) for i in range(len(cells)))
    grid.screen(range(len(cells)), 1e-5)
    longer = 0
    for run in grid.runs:
        lead = Grid._leader(run)
        others = np.arange(len(run.steps)) != lead
        assert (run.steps[others] <= em_grid.SCREEN_STEPS).all()
        # the others were stopped early and can be resumed; the leader went on to a pause at
        # the screening tolerance or to its end
        assert (run.paused | run.converged | run.held | ~run.ok)[others].all()
        if run.paused[lead]:
            t = run.steps[lead]
            assert abs(run.history[t - 1, lead] - run.history[t - 2, lead]) < 1e-5
        longer += run.steps[lead] > em_grid.SCREEN_STEPS
        assert lead == int(np.argmax(run.current()))  # the best objective leads
    assert longer > 0


def test_applies_only_where_the_kernel_serves_every_fit(monkeypatch):
    x = torch.as_tensor(_load("iris"))
    assert em_grid.applies(x, {})
    assert em_grid.applies(x, {"seed": 0, "max_iter": 200, "tol": 1e-6, "stop": "change",
                               "reg_covar": 1e-4, "dtype": torch.float64, "device": "cpu",
                               "compiled": "auto"})
    for options in ({"sample_weight": np.ones(len(x))}, {"n_init": 3}, {"warm_start": None},
                    {"chunk_size": 50}, {"dtype": "float32"}, {"dtype": torch.float32},
                    {"device": "cuda"}, {"device": "cuda:0"}, {"device": torch.device("meta")},
                    {"compiled": False}):
        assert not em_grid.applies(x, options), options
    assert not em_grid.applies(x.numpy(), {})  # rows not yet a tensor
    assert not em_grid.applies(x[:, 0], {})  # not (N, D)
    big = torch.zeros(20_000, 10, dtype=torch.float64)  # past a single fit's MAX_WORK: the
    assert em_grid.applies(big, {})  # grid's lazy screening still wins there
    assert em_grid.applies(torch.zeros(200_000, 2, dtype=torch.float64), {})  # few
    assert not em_grid.applies(torch.zeros(100_000, 5, dtype=torch.float64), {})  # D
    assert not em_grid.applies(torch.zeros(500, 51, dtype=torch.float64), {})
    monkeypatch.setattr(em_compiled, "ready", lambda: False)
    assert not em_grid.applies(x, {})
    assert em_grid.applies(x, {"compiled": True})  # compiles on first use


def test_select_through_the_grid_equals_the_per_fit_path(monkeypatch):
    x = _load("faithful")
    options = dict(covariance=["EII", "EEE", "VEV", "VVV"], n_components=range(1, 5),
                   screen=False)
    served = []
    original = em_grid.applies
    monkeypatch.setattr(em_grid, "applies",
                        lambda *a, **kw: served.append(original(*a, **kw)) or served[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = probmix.select(x, **options)
        monkeypatch.setattr(em_grid, "applies", lambda *a, **kw: False)
        alone = probmix.select(x, **options)
    assert served == [True]  # the first search did run in the grid
    a, b = grid.table, alone.table
    assert list(a["covariance"]) == list(b["covariance"]) and list(a["k"]) == list(b["k"])
    np.testing.assert_array_equal(a["bic"].isna(), b["bic"].isna())
    np.testing.assert_allclose(a["bic"], b["bic"], rtol=0, atol=1e-6)
    assert list(a["converged"]) == list(b["converged"])
    assert a["refined"].all() and b["refined"].all()
    assert (grid.best, grid.best_covariance) == (alone.best, alone.best_covariance)
    assert set(grid.fits) == set(alone.fits)


def test_an_error_while_fits_run_drops_the_fits_not_begun():
    """Leaving the grid on an error (or Ctrl-C) cancels the queued fits instead of running
    the whole search first; the fits already running finish."""
    x = _load("faithful")
    ks = (4, 5, 6)
    starts = {k: _partitions(x, k) for k in ks}
    cells = _cells(("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VVV"), ks)
    grid = Grid(torch.as_tensor(x), cells, starts, {"seed": 0}, threads=2)
    everything = list(range(len(cells)))
    assert all(grid.start(i) for i in everything)
    with pytest.raises(RuntimeError, match="stop"):
        with grid:
            for i in everything:
                grid.submit_refine(i)
            raise RuntimeError("stop")
    untouched = sum(int(grid.runs[i].steps.sum()) == 0 for i in everything)
    assert untouched >= len(cells) // 2, untouched
    assert grid._pool is None


def _random_mixture(seed):
    """Rows of a random Gaussian mixture: K 2-5 in D 2-6, 150-800 rows, overlapping or not."""
    rng = np.random.default_rng(seed)
    d, k, n = int(rng.integers(2, 7)), int(rng.integers(2, 6)), int(rng.integers(150, 800))
    centers = rng.normal(scale=float(rng.uniform(1.5, 4.0)), size=(k, d))
    covs = []
    for _ in range(k):
        a = rng.normal(size=(d, d)) * rng.uniform(0.3, 1.2, size=d)
        covs.append(a @ a.T / d + 0.05 * np.eye(d))
    z = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 3.0)))
    return np.stack([rng.multivariate_normal(centers[j], covs[j]) for j in z])


def _same_pick_as_the_full_search(seeds):
    for seed in seeds:
        x = _random_mixture(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = probmix.select(x, range(1, 8))
            full = probmix.select(x, range(1, 8), screen=False)
        assert (fast.best_covariance, fast.best) == (full.best_covariance, full.best), seed
        assert fast.table["bic"].min() == pytest.approx(full.table["bic"].min(), abs=1e-6)


def test_lazy_screening_keeps_the_full_searchs_pick():
    """The grid's lazy screening (10 iterations of every restart, then the leader alone)
    picks what running every restart of every fit to the full rule picks, with the same BIC
    (here 4 random mixtures; the slow test below runs 60, and 120 were checked by hand)."""
    _same_pick_as_the_full_search(range(4))


@pytest.mark.slow
def test_lazy_screening_keeps_the_full_searchs_pick_on_60_mixtures():
    _same_pick_as_the_full_search(range(4, 64))
