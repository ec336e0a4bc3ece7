"""Fit.save / probmix.load and KMeans/MeanShift save/load: exact round trips, untrusted files."""

import dataclasses
import os
import pickle
import warnings

import numpy as np
import pytest
import torch

import probmix
from programs import two_locs  # the name the format-1 fixtures recorded
from probmix.io.persistence import SavedFileError, SavedProgram, UnsavedValue, _write

X, _ = probmix.three_clusters(60, seed=0)
MODEL = probmix.GaussianMixture(3)


ENGINES = {
    "map-em": dict(engine="map"),
    "map-gradient": dict(engine="map", method="gradient", max_iter=10),
    "svi-stochastic": dict(engine="svi", steps=10, num_draws=20, progress=False),
    "svi-cavi": dict(engine="svi", method="cavi", num_draws=20),
    "mcmc-gibbs": dict(engine="mcmc", method="gibbs", num_samples=15, num_warmup=5, num_chains=2,
                       progress=False),
    "mcmc-nuts": dict(engine="mcmc", num_samples=8, num_warmup=8, num_chains=2, progress=False),
}


@pytest.fixture(scope="module")
def fits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: probmix.fit(MODEL, X, seed=3, **kw) for name, kw in ENGINES.items()}


def assert_identical(a, b, where="value"):
    """Equal type and value; arrays bit-identical (dtype, shape and bytes)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.device == b.device, where
        assert_identical(a.numpy(), b.numpy(), where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            assert_identical(u, v, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert type(b) is type(a) and np.isnan(b), where
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


def assert_same_fit(fit, back):
    for f in dataclasses.fields(probmix.Fit):
        if f.name != "model":
            assert_identical(getattr(fit, f.name), getattr(back, f.name), f.name)


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_engine_round_trips_exactly(fits, name, tmp_path):
    fit = fits[name]
    path = tmp_path / "fit.npz"
    fit.save(path)
    back = probmix.load(path)
    assert_same_fit(fit, back)
    assert repr(back.model) == repr(fit.model) and back.model.family is fit.model.family
    assert back.options["seed"] == 3 and back.versions == probmix.Fit(
        engine="map", model=MODEL, params={}, n_features=1).versions
    x_new = X[::7] + 0.1
    assert np.array_equal(back.predict_proba(x_new), fit.predict_proba(x_new))
    assert np.array_equal(back.score_samples(x_new), fit.score_samples(x_new))
    # a standard .npz: readable with numpy alone, with pickling refused
    with np.load(path, allow_pickle=False) as raw:
        assert "__header__" in raw.files
    # the same fit gives the same bytes (fixed member timestamps)
    fit.save(tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == path.read_bytes()


def test_prior_arrays_tied_and_dirichlet_process_declarations(tmp_path):
    prior = probmix.Prior(weight_concentration=np.array([1.0, 2.0, 3.0]), mean_loc=[0.5, 1.0],
                          mean_precision=0.5, dof=4.0, scale=np.eye(2) * 2)
    model = probmix.GaussianMixture(3, covariance="tied", prior=prior,
                                    weights_prior="dirichlet_process")
    fit = probmix.fit(model, X, seed=0)
    fit.save(tmp_path / "f.npz")
    back = probmix.load(tmp_path / "f.npz")
    assert back.model.covariance == "tied" and back.model.weights_prior == "dirichlet_process"
    for f in dataclasses.fields(probmix.Prior):
        assert_identical(getattr(prior, f.name), getattr(back.model.prior, f.name), f.name)
    assert np.array_equal(back.predict_proba(X), fit.predict_proba(X))
    flat = probmix.fit(probmix.GaussianMixture(2, covariance="spherical", prior="flat"), X)
    flat.save(tmp_path / "flat.npz")
    assert probmix.load(tmp_path / "flat.npz").model.prior == "flat"


def test_custom_program_is_stored_by_name_only(tmp_path):
    x = X[:, :1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = probmix.fit(two_locs, x, method="gradient", max_iter=10, seed=0)
    fit.save(tmp_path / "p.npz")
    assert b"def two_locs" not in (tmp_path / "p.npz").read_bytes()
    bare = probmix.load(tmp_path / "p.npz")
    assert isinstance(bare.model, SavedProgram) and bare.model.qualname == "two_locs"
    assert_same_fit(fit, bare)  # parameters readable without the code
    with pytest.raises(RuntimeError, match="model="):
        bare.predict_proba(x)
    back = probmix.load(tmp_path / "p.npz", model=two_locs)
    assert np.array_equal(back.predict_proba(x), fit.predict_proba(x))
    assert back.n_parameters == fit.n_parameters
    with pytest.warns(UserWarning, match="two_locs"):
        probmix.load(tmp_path / "p.npz", model=lambda x: two_locs(x))
    with pytest.raises(ValueError, match="model="):
        fit_gmm = probmix.fit(MODEL, X)
        fit_gmm.save(tmp_path / "g.npz")
        probmix.load(tmp_path / "g.npz", model=two_locs)


def test_options_keep_their_types_and_unstorable_values_warn(fits, tmp_path):
    options = {"seed": 1, "tensor": torch.arange(3.0), "tuple": (1, "a", None),
               "nan": float("nan"), "scalar": np.float32(1.5), "ints": {1: "one", (2, 3): 4.0},
               "dtype": torch.float32, "numpy_type": np.float64, "device": torch.device("cpu"),
               "nested": {"a": [np.arange(2), {"b": True}]}}
    fit = dataclasses.replace(fits["map-em"], options=options)
    fit.save(tmp_path / "o.npz")
    assert_identical(options, probmix.load(tmp_path / "o.npz").options)
    fit = dataclasses.replace(fits["map-em"], options={"callback": print})
    with pytest.warns(UserWarning, match="builtin_function_or_method"):
        fit.save(tmp_path / "u.npz")
    value = probmix.load(tmp_path / "u.npz").options["callback"]
    assert isinstance(value, UnsavedValue) and "print" in value.text


def test_unstorable_parameters_raise_and_leave_the_old_file(fits, tmp_path):
    path = tmp_path / "f.npz"
    fits["map-em"].save(path)
    before = path.read_bytes()
    bad = dataclasses.replace(fits["map-em"], params={"weights": np.array([object()])})
    with pytest.raises(TypeError, match="params"):
        bad.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["f.npz"]


def test_a_crash_while_writing_leaves_no_half_file(fits, tmp_path, monkeypatch):
    path = tmp_path / "f.npz"
    fits["map-em"].save(path)
    before = path.read_bytes()
    calls = []

    def crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies in the middle of the archive
        return write_array(*args, **kwargs)

    write_array = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(KeyboardInterrupt):
        fits["svi-cavi"].save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["f.npz"]


def test_estimators_round_trip(tmp_path):
    km = probmix.KMeans(3, n_init=2, seed=1, dtype=torch.float32).fit(X)
    km.save(tmp_path / "km.npz")
    back = probmix.KMeans.load(tmp_path / "km.npz")
    assert vars(back).keys() == vars(km).keys()
    for key, value in vars(km).items():
        assert_identical(value, vars(back)[key], key)
    assert np.array_equal(back.predict(X), km.predict(X))
    assert np.array_equal(back.transform(X), km.transform(X))
    given = probmix.KMeans(2, init=X[:2].tolist())  # settings only, not fitted
    given.save(tmp_path / "given.npz")
    assert probmix.load(tmp_path / "given.npz").init == X[:2].tolist()

    ms = probmix.MeanShift(bandwidth=1.5, keep_path=True, seeds=X[::5], seed=0).fit(X)
    ms.save(tmp_path / "ms.npz")
    back = probmix.load(tmp_path / "ms.npz")
    assert isinstance(back, probmix.MeanShift)
    for key, value in vars(ms).items():
        assert_identical(value, vars(back)[key], key)
    assert np.array_equal(back.predict(X), ms.predict(X))
    with pytest.raises(SavedFileError, match="MeanShift"):
        probmix.KMeans.load(tmp_path / "ms.npz")


def test_newer_format_and_foreign_files_are_refused(tmp_path):
    header = {"format": "probmix", "format_version": 99, "kind": "Fit",
              "versions": {"probmix": "9.0"}, "state": {}}
    _write(tmp_path / "new.npz", header, {})
    with pytest.raises(SavedFileError, match="format version 99.*probmix 9.0.*Upgrade"):
        probmix.load(tmp_path / "new.npz")

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / "pwned"),))

    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"weights": Evil()}))
    torch.save({"weights": torch.ones(2)}, tmp_path / "torch.npz")
    np.savez(tmp_path / "plain.npz", weights=np.ones(2))
    np.savez(tmp_path / "objects.npz", __header__=np.array([Evil()], dtype=object))
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "text.npz").write_text("weights,means\n1,2\n")
    for name in ("pickle", "torch", "plain", "objects", "empty", "text"):
        with pytest.raises(SavedFileError, match="probmix"):
            probmix.load(tmp_path / f"{name}.npz")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(FileNotFoundError):
        probmix.load(tmp_path / "missing.npz")


def test_unavailable_device_falls_back_to_the_cpu_with_a_warning(fits, tmp_path):
    fit = dataclasses.replace(fits["map-em"], device="cuda:7")
    fit.save(tmp_path / "f.npz")
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.warns(UserWarning, match="cuda:7"):
        back = probmix.load(tmp_path / "f.npz")
    assert back.device == "cpu"
    assert probmix.load(tmp_path / "f.npz", device="cpu").device == "cpu"


@pytest.mark.parametrize("which", ["fit", "kmeans"])
def test_fuzzed_files_give_an_error_or_the_exact_fit(fits, which, tmp_path):
    """Truncations and byte changes anywhere: SavedFileError, or (a change the archive does
    not read, e.g. in a timestamp) the very same content. Never another exception."""
    obj = fits["mcmc-gibbs"] if which == "fit" else probmix.KMeans(3, seed=0).fit(X)
    path = tmp_path / "good.npz"
    obj.save(path)
    good = path.read_bytes()
    rng = np.random.default_rng(0)
    variants = [good[:n] for n in sorted({int(n) for n in rng.integers(0, len(good), 60)})]
    for _ in range(150):
        data = bytearray(good)
        for pos in rng.integers(0, len(good), rng.integers(1, 4)):
            data[pos] = int(rng.integers(0, 256))
        variants.append(bytes(data))
    errors = 0
    for data in variants:
        (tmp_path / "bad.npz").write_bytes(data)
        try:
            back = probmix.load(tmp_path / "bad.npz")
        except SavedFileError:
            errors += 1
            continue
        if which == "fit":
            assert_same_fit(obj, back)
        else:
            for key, value in vars(obj).items():
                assert_identical(value, vars(back)[key], key)
    assert errors > len(variants) // 2  # most changes hit data guarded by checksums


def test_files_written_by_format_1_code_still_load():
    """tests/data/persistence_v1_* were written before persistence became a registry."""
    import sys

    data = os.path.join(os.path.dirname(__file__), "data")
    sys.path.insert(0, data)
    try:
        from make_persistence_v1 import two_locs as saved_program
    finally:
        sys.path.remove(data)
    x = np.load(os.path.join(data, "persistence_v1_x.npy"))
    expected = np.load(os.path.join(data, "persistence_v1_expected.npz"))
    fit = probmix.load(os.path.join(data, "persistence_v1_map.npz"))
    assert fit.model.covariance == "tied" and isinstance(fit.model.prior, probmix.Prior)
    assert np.array_equal(fit.model.prior.scale, np.eye(2) * 2)
    assert np.array_equal(fit.predict_proba(x), expected["map"])
    fit = probmix.load(os.path.join(data, "persistence_v1_cavi.npz"))
    assert fit.draws and np.array_equal(fit.predict_proba(x), expected["cavi"])
    with pytest.warns(UserWarning, match="two_locs"):  # saved from the script's __main__
        fit = probmix.load(os.path.join(data, "persistence_v1_program.npz"), model=saved_program)
    assert np.array_equal(fit.predict_proba(x[:, :1]), expected["program"])
    for name in ("kmeans", "meanshift"):
        est = probmix.load(os.path.join(data, f"persistence_v1_{name}.npz"))
        assert np.array_equal(est.predict(x), expected[name])


def test_a_program_without_a_module_loads_without_a_spurious_warning(tmp_path):
    def nameless(x):
        return two_locs(x)

    nameless.__module__ = None  # as for functions made by exec() without a __name__
    x = X[:, :1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = probmix.fit(nameless, x, method="gradient", max_iter=5, seed=0)
    fit.save(tmp_path / "p.npz")
    assert probmix.load(tmp_path / "p.npz").model.module == "?"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = probmix.load(tmp_path / "p.npz", model=nameless)
    assert np.array_equal(back.predict_proba(x), fit.predict_proba(x))


def test_classes_register_themselves_and_persistence_imports_none_of_them():
    import ast
    import pathlib

    from probmix.io.persistence import registry

    assert {"Fit", "KMeans", "MeanShift", "GaussianMixture", "Prior"} <= set(registry._CLASSES)
    folder = pathlib.Path(registry.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[:2] != ["probmix", "results"], path
                assert node.module.split(".")[:2] not in (["probmix", "baselines"],
                                                          ["probmix", "model"]), path
