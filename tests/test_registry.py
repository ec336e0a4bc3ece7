"""The engine registry: one table that fit(), compare(), select() and the CLI read; option
names checked against the engines' signatures; deprecated names translated with a warning."""

import inspect
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import probmix
from probmix.infer import dispatch
from probmix.infer.registry import REGISTRY, default_method, lookup, methods, resolve
from probmix.results.diagnostics import ConvergenceDiagnosticWarning

X, _ = probmix.three_clusters(40, seed=0)
MODEL = probmix.GaussianMixture(3)


def program(x):
    """A custom program: two 1-D Gaussian components with unit scale."""
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(2, dtype=x.dtype)))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(torch.zeros((), dtype=x.dtype), 10.0))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.Normal(locs[z], 1.0), obs=x[:, 0])


def test_the_table():
    assert methods("map") == ("em", "gradient", "online")
    assert methods("svi") == ("stochastic", "cavi")
    assert methods("mcmc") == ("nuts", "gibbs")
    assert [default_method(e, MODEL) for e in ("map", "svi", "mcmc")] == ["em", "stochastic",
                                                                            "nuts"]
    assert [default_method(e, program) for e in ("map", "svi", "mcmc")] == [
        "gradient", "stochastic", "nuts"]
    for entry in REGISTRY.values():
        run = entry.load()
        params = inspect.signature(run).parameters
        # the options are the function's keyword-only parameters, defaults included
        assert entry.options == {n: p.default for n, p in params.items()
                                 if p.kind is p.KEYWORD_ONLY}
        assert {"seed", "device", "dtype", "progress"} <= set(entry.options), entry.method
        assert params["seed"].default == 0
    assert REGISTRY["mcmc", "nuts"].options["num_warmup"] == 1000
    with pytest.raises(TypeError, match="GaussianMixture or a Pyro program"):
        default_method("map", 3)


@pytest.mark.parametrize("key", list(REGISTRY), ids="-".join)
def test_every_method_rejects_a_misspelled_option_with_the_valid_list(key):
    engine, method = key
    entry = REGISTRY[key]
    with pytest.raises(ValueError) as info:
        probmix.fit(MODEL, X, engine=engine, method=method, seeed=1)
    message = str(info.value)
    assert "'seeed'" in message and f"method={method!r}" in message
    assert "Did you mean 'seed'?" in message
    for name in entry.options:
        assert name in message


def test_unknown_method_and_engine_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"method must be one of \('nuts', 'gibbs'\).*'gibbs'\?"):
        probmix.fit(MODEL, X, engine="mcmc", method="gibs")
    with pytest.raises(ValueError, match="engine must be one of"):
        probmix.fit(MODEL, X, engine="hmc")
    with pytest.raises(ValueError, match="closed-form for a probmix.GaussianMixture only; for a "
                       "custom program use method='nuts'"):
        probmix.fit(program, X, engine="mcmc", method="gibbs")
    with pytest.raises(ValueError, match="kernel= names the MCMC algorithm"):
        probmix.fit(MODEL, X, engine="map", kernel="em")


def test_method_names_the_mcmc_algorithm():
    # it used to fail inside fit_nuts: "got an unexpected keyword argument 'method'"
    fit = probmix.fit(MODEL, X, engine="mcmc", method="gibbs", num_samples=5, num_warmup=5,
                      num_chains=1, progress=False)
    assert fit.options["method"] == "gibbs"


GIBBS = dict(engine="mcmc", num_samples=10, seed=1, progress=False)


@pytest.mark.parametrize("old, new", [
    (dict(kernel="gibbs", num_warmup=5, num_chains=2),
     dict(method="gibbs", num_warmup=5, num_chains=2)),
    (dict(method="gibbs", warmup=5, num_chains=2), dict(method="gibbs", num_warmup=5,
                                                        num_chains=2)),
    (dict(method="gibbs", num_warmup=5, chains=2), dict(method="gibbs", num_warmup=5,
                                                        num_chains=2)),
])
def test_deprecated_sampler_names_warn_at_the_caller_and_give_the_same_fit(old, new):
    (name,) = set(old) - set(new)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceDiagnosticWarning)
        with pytest.warns(DeprecationWarning, match=f"{name}= is deprecated; use") as record:
            a = probmix.fit(MODEL, X, **GIBBS, **old)
        assert all(r.filename == __file__ for r in record if r.category is DeprecationWarning)
        warnings.simplefilter("error", DeprecationWarning)
        b = probmix.fit(MODEL, X, **GIBBS, **new)
    np.testing.assert_array_equal(a.draws["means"], b.draws["means"])


@pytest.mark.parametrize("engine, method", [("map", "em"), ("svi", "cavi"),
                                            ("map", "gradient")])
def test_verbose_is_progress(engine, method):
    with pytest.warns(DeprecationWarning, match="verbose= is deprecated; use progress="):
        fit = probmix.fit(MODEL, X, engine=engine, method=method, verbose=False, max_iter=5)
    assert fit.options["method"] == method


def test_kmeans_plus_plus_is_spelled_like_scikit_learn():
    with pytest.warns(DeprecationWarning, match="init='kmeans\\+\\+' is deprecated; use "
                      "init='k-means\\+\\+'"):
        old = probmix.fit(MODEL, X, init="kmeans++", seed=2)
    new = probmix.fit(MODEL, X, init="k-means++", seed=2)
    np.testing.assert_array_equal(old.means, new.means)
    assert new.options["init"] == "k-means++"


def test_an_option_under_both_names_is_refused():
    with pytest.raises(ValueError, match="pass only num_warmup="):
        resolve(MODEL, "mcmc", dict(warmup=3, num_warmup=4))
    with pytest.raises(ValueError, match="same option"):
        resolve(MODEL, "svi", dict(max_iter=3, steps=4))


def test_max_iter_caps_svi_steps():
    entry, options = resolve(MODEL, "svi", dict(max_iter=7))
    assert entry.method == "stochastic" and options == {"steps": 7}


@pytest.mark.parametrize("options", [
    dict(engine="map"),
    dict(engine="map", method="online", chunk_size=40),
    dict(engine="mcmc", method="gibbs", num_samples=5, num_warmup=5, num_chains=1,
         progress=False),
])
def test_seed_none_draws_a_seed_and_records_it(options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains
        a = probmix.fit(MODEL, X, seed=None, **options)
        seed = a.options["seed"]
        assert isinstance(seed, int) and seed >= 0
        again = probmix.fit(MODEL, X, seed=seed, **options)
    np.testing.assert_array_equal(a.means, again.means)


def test_converged_is_an_optimisers_status_only():
    assert probmix.fit(MODEL, X).converged is True
    online = probmix.fit(MODEL, X, method="online", chunk_size=40)
    gibbs = probmix.fit(MODEL, X, engine="mcmc", method="gibbs", num_samples=5, num_warmup=5,
                        num_chains=1, progress=False)
    assert online.converged is None and gibbs.converged is None
    assert "converged=None" in gibbs.parameter_table()


def test_compare_and_select_check_options_before_fitting(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "fit", lambda *a, **k: calls.append(k))
    with pytest.raises(ValueError, match="unknown option 'nmu_samples'.*num_samples"):
        probmix.compare(MODEL, X, mcmc={"nmu_samples": 5})
    with pytest.raises(ValueError, match="unknown option 'tool'.*'tol'"):
        probmix.select(X, [1, 2], tool=1e-3)
    assert calls == []


def test_size_of_a_path_is_unknown_so_default_threading(tmp_path, monkeypatch):
    assert dispatch._size("events.npy") is None  # not len("events.npy") == 10
    assert dispatch._size(tmp_path / "events.npy") is None
    assert dispatch._size(iter([X])) is None
    assert dispatch._size(X) == X.size
    assert dispatch._size(X.tolist()) == X.size
    assert dispatch._size([X[:10], X[10:]]) == X.size  # a list of chunks
    np.save(tmp_path / "events.npy", X)
    limited = []
    real = dispatch.threads_for

    def record(n):
        limited.append(n)
        return real(n)

    monkeypatch.setattr(dispatch, "threads_for", record)
    from_path = probmix.fit(MODEL, str(tmp_path / "events.npy"), seed=0)
    assert limited == []  # a path: no one-thread limit from a bogus size
    in_memory = probmix.fit(MODEL, X, seed=0)
    assert limited == [X.size * 3]
    order = np.argsort(from_path.means[:, 0]), np.argsort(in_memory.means[:, 0])
    np.testing.assert_allclose(from_path.means[order[0]], in_memory.means[order[1]], atol=1e-3)


def test_lookup_is_the_one_table():
    assert lookup("map", "online").function == "probmix.infer.map.online_em.fit_online_em"
    with pytest.raises(ValueError, match="method must be one of"):
        lookup("svi", "em")
