"""probmix's EM against R's mclust 6.0.0 on five public data sets (tests/data/README.md).

The reference values were made by benchmarks/mclust_reference.py (Rscript, not in CI) and
stored in tests/data/mclust_reference.json. For every covariance model of mclust and
K = 1..6: with prior="flat" and EM's defaults (the Ward and VVV hierarchical starts plus
k-means++ starts, Aitken stopping), probmix's log-likelihood is at least mclust's minus 0.01 nats (higher is fine:
another, better optimum, or a tighter stop), and the parameter counts (BIC's df) are
mclust's. (model, K) pairs where probmix is still below mclust are listed in KNOWN_MISSES as
strict expected failures (issue 16 stays open for them): each fails the suite the day it
starts to pass, so the list cannot go stale. With init="mclust" (mclust's own start alone)
select is Mclust(X): the same pick and classification, a BIC at least as good.
"""

import warnings

import pytest

import probmix
from mclust_data import REFERENCE, load
from probmix.model.covariance import MCLUST_MODELS

FAST = ("faithful", "iris", "diabetes", "banknote", "wine")  # every model and K in CI (~50 s)
KNOWN_MISSES = {  # measured on this commit: below mclust by about the nats given
    ("banknote", "VVE", 5): 0.7,
}


def _cases(names):
    out = []
    for name in names:
        grid = REFERENCE["datasets"][name]["grid"]
        for model in MCLUST_MODELS:
            for k in range(1, 7):
                if grid[model]["loglik"][k - 1] is None:  # mclust itself failed there
                    continue
                marks = [pytest.mark.xfail(strict=True, reason="issue 16: a worse local "
                                           "optimum than mclust's")] \
                    if (name, model, k) in KNOWN_MISSES else []
                out.append(pytest.param(name, model, k, marks=marks, id=f"{name}-{model}-{k}"))
    return out


def _check(name, model, k):
    x, entry = load(name)
    ref = entry["grid"][model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = probmix.fit(probmix.GaussianMixture(k, covariance=model, prior="flat"), x,
                          engine="map", seed=0)
    loglik = float(fit.score(x)) * len(x)
    assert fit.n_parameters == ref["df"][k - 1]
    assert loglik >= ref["loglik"][k - 1] - 0.01, (loglik, ref["loglik"][k - 1])


@pytest.mark.parametrize("name, model, k", _cases(FAST))
def test_flat_em_reaches_mclusts_likelihood(name, model, k):
    _check(name, model, k)


def test_every_mclust_name_is_a_family_with_mclusts_parameter_count():
    for name in ("iris", "wine"):
        entry = REFERENCE["datasets"][name]
        for model in MCLUST_MODELS:
            for k in (1, 3):
                expected = entry["grid"][model]["df"][k - 1]
                got = probmix.GaussianMixture(k, covariance=model).n_parameters(entry["d"])
                assert got == expected, (name, model, k)


@pytest.mark.parametrize("name", FAST)
def test_select_from_mclusts_start_is_mclusts_search(name):
    """init="mclust" starts every fit from mclust's own start (one partition of the VVV
    tree): select then is Mclust(X), the same (model, K) and classification (the tree is
    mclust's hc() on four sets; on faithful tied merge costs break differently), with a BIC
    at least as good (EM run to the mode: on wine and banknote the VVE fit is 4.8 and 0.6
    nats above mclust's, which stops earlier)."""
    from sklearn.metrics import adjusted_rand_score

    x, entry = load(name)
    mclust = entry["default"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = probmix.select(x, range(1, 10), init="mclust")
    assert (sel.best_covariance, sel.best) == (mclust["model"], mclust["k"])
    assert sel.best_fit.options["init"] == "mclust" and sel.best_fit.options["n_init"] == 1
    assert -sel.table["bic"].min() >= mclust["bic"] - 0.02  # mclust's sign: higher is better
    ari = adjusted_rand_score(mclust["classification"], sel.best_fit.predict(x))
    assert ari >= (0.99 if name == "faithful" else 1.0), ari
