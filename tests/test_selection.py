"""Model comparison (PSIS-LOO, WAIC) and selection of the number of components."""

import numpy as np
import pytest

import probmix
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
    bic = probmix.select(x, range(1, 5), criterion="bic")
    assert bic.best == 3 and list(bic.table.index) == [1, 2, 3, 4]
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
