"""Model comparison (PSIS-LOO, WAIC) and selection of the covariance family and the number of
components (mclust's search: the acceptance test against R's Mclust on Old Faithful)."""

import warnings

import numpy as np
import pytest

import probmix
from mclust_data import load
from probmix.io.datasets import three_clusters
from probmix.results.selection import waic


@pytest.fixture(scope="module")
def fits():
    x, _ = three_clusters(80, seed=0)
    return x, {k: probmix.fit(probmix.GaussianMixture(k), x, engine="svi", method="cavi",
                              seed=0, num_draws=400) for k in (1, 2, 3)}


def test_loo_and_waic_prefer_the_true_k(fits):
    x, by_k = fits
    named = {f"K={k}": f for k, f in by_k.items()}
    for criterion in ("loo", "waic"):
        table = probmix.compare_models(named, criterion=criterion)
        assert table.index[0] == "K=3"
        assert table.loc["K=3", "elpd_diff"] == 0.0 and table.loc["K=1", "elpd_diff"] > 50


def test_waic_matches_its_definition(fits):
    x, by_k = fits
    fit = by_k[3]
    ll = fit.pointwise_log_likelihood(x).reshape(-1, len(x))
    lppd = np.log(np.exp(ll).mean(0)).sum()
    assert waic(fit)["elpd_waic"] == pytest.approx(lppd - ll.var(0, ddof=1).sum(), rel=1e-10)
    # WAIC and PSIS-LOO estimate the same quantity: close on well-behaved data
    table = probmix.compare_models({"a": fit}, criterion="loo")
    assert table.loc["a", "elpd"] == pytest.approx(waic(fit)["elpd_waic"], abs=2.0)


def test_select_by_bic_and_loo():
    x, _ = three_clusters(80, seed=1)
    bic = probmix.select(x, range(1, 5), criterion="bic", covariance="full")
    assert bic.best == 3 and list(bic.table.index) == [1, 2, 3, 4]
    assert bic.best_covariance == "VVV" and bic.best_fit is bic.fits[3]
    assert bic.table.loc[3, "bic"] == pytest.approx(bic.fits[3].bic(x))
    loo = probmix.select(x, range(2, 5), criterion="loo", engine="svi", method="cavi",
                         num_draws=300)
    assert loo.best in (3, 4) and loo.table.loc[3, "elpd_loo"] > loo.table.loc[2, "elpd_loo"] + 20


def test_errors(fits):
    x, by_k = fits
    map_fit = probmix.fit(probmix.GaussianMixture(2), x, seed=0)
    with pytest.raises(ValueError, match="no posterior draws"):
        probmix.compare_models([map_fit, by_k[2]])
    with pytest.raises(ValueError, match="criterion must be"):
        probmix.select(x, criterion="dic")
    other = probmix.fit(probmix.GaussianMixture(2), x[:100], engine="svi", method="cavi", seed=0)
    with pytest.raises(ValueError, match="same data"):
        probmix.compare_models([other, by_k[2]])


# ----------------------------------------------------------------------------- mclust's search

EM = dict(init="auto", stop="aitken", max_iter=1000)  # mclust's start and stopping rule


@pytest.fixture(scope="module")
def faithful():
    return load("faithful")


def test_select_all_is_at_least_as_good_as_mclust(faithful):
    """Issue 16's acceptance test: over mclust's 14 models, probmix's pick has a BIC at least as
    good as Mclust(X)'s (EEE, K = 3 on faithful; mclust's BIC sign is the opposite of ours)."""
    x, entry = faithful
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = probmix.select(x, range(1, 4), covariance="all", **EM)
    table = sel.table
    assert len(table) == 14 * 3 and list(table.columns) == [
        "covariance", "k", "loglik", "n_parameters", "bic", "converged", "refined"]
    assert list(table["covariance"].unique()) == list(probmix.model.covariance.MCLUST_MODELS)
    mclust = entry["default"]
    best_bic = table["bic"].min()
    assert best_bic == table.loc[table["bic"].idxmin(), "bic"] == sel.best_fit.bic(x)
    assert best_bic <= -mclust["bic"] + 1e-6, (sel.best_covariance, sel.best, best_bic)
    assert (sel.best_covariance, sel.best) == (mclust["model"], mclust["k"])
    assert set(sel.fits) == {(m, k) for m in probmix.model.covariance.MCLUST_MODELS
                             for k in (1, 2, 3)}
    # mclust's grid, sign flipped: every (model, K) at least as good, within 0.01 nats
    for row in table.itertuples():
        assert row.bic <= -entry["grid"][row.covariance]["bic"][row.k - 1] + 0.02, row
    top = sel.top(3)
    assert top.iloc[0]["bic"] == best_bic and top["bic"].is_monotonic_increasing


def test_icl_adds_the_classification_entropy(faithful):
    x, entry = faithful
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = probmix.select(x, range(1, 4), covariance=["VVE", "EEE"], criterion="icl", **EM)
    table = sel.table
    assert (table["icl"] >= table["bic"] - 1e-9).all()
    assert (table.loc[table["k"] == 1, "icl"] == table.loc[table["k"] == 1, "bic"]).all()
    fit = sel.fits[("EEE", 3)]
    z = fit.predict_proba(x)
    expected = fit.bic(x) - 2 * np.log(z.max(1)).sum()
    assert table.loc[(table["covariance"] == "EEE") & (table["k"] == 3), "icl"].item() == \
        pytest.approx(expected)
    pick = entry["default"]["icl_pick"]  # mclust: VVE, K = 2
    assert (sel.best_covariance, sel.best) == (pick["model"], pick["k"])
    assert table["icl"].min() <= -pick["icl"] + 1e-6


def test_failed_fits_are_nan_rows_and_warnings_name_the_fit():
    rng = np.random.default_rng(0)
    # five identical points: a full covariance collapses onto them without a ridge
    x = np.concatenate([rng.normal(size=(30, 2)), np.tile([[5.0, 5.0]], (5, 1)),
                        rng.normal(size=(30, 2)) + [10.0, 0.0]])
    sel = probmix.select(x, [3], covariance=["VVV", "EII"], reg_covar=0.0, init="auto")
    vvv, eii = sel.table.iloc[0], sel.table.iloc[1]
    assert vvv["covariance"] == "VVV" and np.isnan(vvv["bic"]) and np.isnan(vvv["loglik"])
    assert not vvv["converged"] and vvv["n_parameters"] == 17
    assert np.isfinite(eii["bic"]) and (sel.best_covariance, sel.best) == ("EII", 3)
    assert ("VVV", 3) not in sel.fits
    # with the default ridge EM succeeds, but the component on the five points is the ridge
    # alone (variance reg_covar): a likelihood spike, recorded as failed as mclust would
    spiked = probmix.select(x, [3], covariance=["VVV", "VVI", "EII"], init="auto")
    assert spiked.table["bic"].isna().tolist() == [True, True, False]
    assert spiked.best_covariance == "EII"
    with pytest.warns(probmix.ConvergenceWarning, match=r"covariance='EEE', K=2: EM did not"):
        probmix.select(x, [2], covariance="tied", max_iter=1)


@pytest.mark.parametrize("bad", [[2.5], "12", [], [0, 1], [True], 2.0, [2, 2]])
def test_bad_n_components(bad):
    x, _ = three_clusters(30, seed=0)
    with pytest.raises(ValueError, match="n_components"):
        probmix.select(x, bad, covariance="full")


def test_bad_covariance():
    x, _ = three_clusters(30, seed=0)
    with pytest.raises(ValueError, match="covariance"):
        probmix.select(x, [1], covariance=["VVV", "full"])
    with pytest.raises(ValueError, match="covariance must be one of mclust"):
        probmix.select(x, [1], covariance=["VVV", "XYZ"])


def test_one_hierarchical_tree_per_data_set(monkeypatch):
    from probmix.infer.map import hierarchical

    calls = []
    real = hierarchical.linkage
    monkeypatch.setattr(hierarchical, "linkage", lambda *a, **k: calls.append(1) or real(*a, **k))
    hierarchical._cache.clear()
    x, _ = three_clusters(60, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = probmix.select(x, [2, 3], covariance=["VVV", "EEE", "EII"], init="hc")
    assert len(sel.table) == 6 and len(calls) == 1


def test_screening_keeps_the_pick_and_the_refined_values(faithful):
    """select's default screens every (covariance, K) with a loose stop, then refines every fit
    within SCREEN_WINDOW of the best: the pick, its BIC and every refined row are those of the
    search run to the full stopping rule; unrefined rows are lower bounds (EM is monotone from
    the same start) and lie outside the window."""
    from probmix.results.selection import SCREEN_WINDOW

    x, _ = faithful
    families = ["EII", "EEE", "VEV", "VVV"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = probmix.select(x, range(1, 6), covariance=families, screen=False)
        fast = probmix.select(x, range(1, 6), covariance=families)
    assert full.table["refined"].all() and 0 < fast.table["refined"].sum() < len(fast.table)
    assert (fast.best_covariance, fast.best) == (full.best_covariance, full.best)
    assert fast.best_fit.bic(x) == pytest.approx(full.best_fit.bic(x), abs=1e-6)
    refined = fast.table["refined"].to_numpy()
    a, b = full.table["bic"].to_numpy(), fast.table["bic"].to_numpy()
    np.testing.assert_allclose(b[refined], a[refined], atol=1e-4)
    assert (b[~refined] >= a[~refined] - 1e-6).all()
    assert (b[~refined] > np.nanmin(b) + SCREEN_WINDOW).all()
    for (label, k), fit in fast.fits.items():
        row = fast.table[(fast.table["covariance"] == label) & (fast.table["k"] == k)].iloc[0]
        assert fit.options["stop"] == ("aitken" if row["refined"] else "change"), (label, k)


@pytest.mark.parametrize("init", ["auto", "hc", "mclust", "kmeans", "k-means++"])
def test_select_fits_equal_fit_for_every_partition_init(init):
    """select computes each partition init's starts once per K and gives them to every
    family's fit (and, on small data, runs the grid): every fit still equals what
    probmix.fit gives for its (covariance, K) with that init, and records the same options
    (the init asked for, not the partitions it was handed)."""
    x, _ = three_clusters(80, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = probmix.select(x, [2, 3], covariance=["EII", "VEV", "VVV"], init=init,
                             screen=False)
        for (label, k), fit in sel.fits.items():
            alone = probmix.fit(probmix.GaussianMixture(k, covariance=label, prior="flat"), x,
                                init=init)
            assert fit.options == alone.options, (label, k)
            for name in ("weights", "means", "covariances"):
                np.testing.assert_allclose(fit.params[name], alone.params[name], rtol=0,
                                           atol=1e-9, err_msg=f"{label}, {k}: {name}")
    assert len(sel.fits) == 6
