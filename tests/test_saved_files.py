"""Saved fits and estimators: every engine's default fit round-trips, and a loaded file is
consistent (shapes, finiteness, device) or refused with SavedFileError (issue 17, items 1, 4).
"""

import warnings

import numpy as np
import pytest
import torch

import probmix
from probmix.infer.registry import REGISTRY
from probmix.io.persistence import SavedFileError
from probmix.io.persistence import format as fmt
from test_persistence import assert_same_fit

X, _ = probmix.three_clusters(60, seed=0)
MODEL = probmix.GaussianMixture(3)
# Default settings, except NUTS's sample counts (8,000 draws take a minute; the field types
# do not depend on the count) and progress bars off.
SHORTER = {("mcmc", "nuts"): dict(num_samples=20, num_warmup=20)}


@pytest.fixture(scope="module")
def default_fits():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for (engine, method), meta in REGISTRY.items():
            opts = dict(SHORTER.get((engine, method), {}))
            if "progress" in meta.options:
                opts["progress"] = False
            out[f"{engine}-{method}"] = probmix.fit(MODEL, X, engine=engine, method=method,
                                                    seed=1, **opts)
    return out


_SCALARS = (type(None), bool, int, float, str)


def _plain(value) -> bool:
    """Whether ``value`` is made only of types that a probmix file gives back as they were."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, (_SCALARS, np.ndarray, np.generic))


def test_default_fits_of_every_engine_round_trip(default_fits, tmp_path):
    assert {"map-em", "svi-stochastic", "svi-cavi", "mcmc-nuts", "mcmc-gibbs"} <= set(
        default_fits)
    for name, fit in default_fits.items():
        # the scalar fields are Python scalars whatever the engine computed them with
        assert fit.converged is None or type(fit.converged) is bool, name
        assert type(fit.n_iter) is int and type(fit.n_features) is int, name
        for field in ("params", "draws", "options", "sample_stats", "versions"):
            assert _plain(getattr(fit, field)), (name, field)
        path = tmp_path / f"{name}.npz"
        fit.save(path)
        back = probmix.load(path)
        assert_same_fit(fit, back)
        assert np.array_equal(back.predict_proba(X[:9]), fit.predict_proba(X[:9])), name


def test_svi_window_rule_gives_a_plain_bool_that_loads(tmp_path):
    """The original failure: the windowed convergence test returned numpy.bool_."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 150 steps may not converge; the type is the point
        fit = probmix.fit(MODEL, X, engine="svi", steps=150, window=50, progress=False, seed=0)
    assert type(fit.converged) is bool
    fit.save(tmp_path / "svi.npz")
    assert probmix.load(tmp_path / "svi.npz").converged == fit.converged
    made = probmix.Fit(engine="map", model=MODEL, params={}, n_features=np.int64(2),
                       converged=np.bool_(True), n_iter=np.int32(3), scale=np.float32(2.0))
    assert (type(made.converged), type(made.n_iter), type(made.n_features),
            type(made.scale)) == (bool, int, int, float)


def test_every_baseline_default_fit_round_trips(tmp_path):
    for est in (probmix.KMeans(3), probmix.MeanShift()):
        est.fit(X)
        est.save(tmp_path / "e.npz")
        back = probmix.load(tmp_path / "e.npz")
        assert np.array_equal(back.predict(X), est.predict(X))


# ----------------------------------------------------------------------------- crafted files


def _craft(path, edit):
    """Rewrite the probmix file at ``path`` after ``edit(state, arrays)`` changed it."""
    header, arrays = fmt.read(path)
    edit(header["state"], arrays)
    fmt.write(path, header, arrays)


def _set_array(key):
    def setter(value):
        def edit(state, arrays):
            node = state[key]
            name = next(iter(node.values()))
            arrays[name] = np.asarray(value)
        return edit
    return setter


def _param(name, value_fn):
    def edit(state, arrays):
        key = state["params"]["$dict"][name]["$array"]
        arrays[key] = value_fn(arrays[key])
    return edit


KMEANS_CASES = {
    "centres (2, 1)": _set_array("_centers")(np.zeros((2, 1))),
    "centres of K-1 rows": _set_array("_centers")(np.zeros((2, 2))),
    "NaN centres": _set_array("_centers")(np.full((3, 2), np.nan)),
    "inf mean": _set_array("_mean")(np.array([np.inf, 0.0])),
    "mean of wrong length": _set_array("_mean")(np.zeros(3)),
    "float16 centres": _set_array("_centers")(np.zeros((3, 2), np.float16)),
    "integer centres": _set_array("_centers")(np.zeros((3, 2), np.int64)),
    "labels past K": _set_array("labels_")(np.full(len(X), 7)),
    "public centres of wrong shape": _set_array("cluster_centers_")(np.zeros((3, 5))),
    "meta centres": lambda state, arrays: state["_centers"].__setitem__("device", "meta"),
}


@pytest.mark.parametrize("case", list(KMEANS_CASES))
def test_crafted_kmeans_files_are_refused_at_load(case, tmp_path):
    path = tmp_path / "km.npz"
    probmix.KMeans(3, seed=0).fit(X).save(path)
    _craft(path, KMEANS_CASES[case])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the meta device: "not available, loading on the CPU"
        if case == "meta centres":  # mapped to the CPU: then consistent, and it predicts
            back = probmix.load(path)
            assert back._centers.device.type == "cpu" and back.predict(X).shape == (len(X),)
            return
        with pytest.raises(SavedFileError, match="Damaged"):
            probmix.load(path)


def test_loading_onto_the_meta_device_is_refused(tmp_path):
    probmix.KMeans(2, seed=0).fit(X).save(tmp_path / "km.npz")
    probmix.fit(MODEL, X, seed=0).save(tmp_path / "fit.npz")
    for name in ("km.npz", "fit.npz"):
        with pytest.raises(ValueError, match="device='meta'.*'cpu'"):
            probmix.load(tmp_path / name, device="meta")


def test_crafted_meanshift_file_is_refused(tmp_path):
    path = tmp_path / "ms.npz"
    probmix.MeanShift(bandwidth=2.0).fit(X).save(path)
    _craft(path, _set_array("_centers")(np.zeros((2, 1))))
    with pytest.raises(SavedFileError, match="_centers"):
        probmix.load(path)


FIT_CASES = {
    "NaN weights": _param("weights", lambda a: np.full_like(a, np.nan)),
    "weights not summing to one": _param("weights", lambda a: a * 3),
    "negative weight": _param("weights", lambda a: a * np.array([-1.0, 1.0, 1.0])),
    "weights of K+1": _param("weights", lambda a: np.append(a, 0.0)),
    "means (K, D+1)": _param("means", lambda a: np.zeros((3, 3))),
    "means (1, D)": _param("means", lambda a: a[:1]),
    "inf mean": _param("means", lambda a: np.where(a == a.max(), np.inf, a)),
    "covariances of wrong shape": _param("covariances", lambda a: a[:, :1, :1]),
    "singular covariance": _param("covariances", lambda a: np.zeros_like(a)),
    "string means": _param("means", lambda a: np.full(a.shape, "x")),
    "center of wrong length": lambda s, arrays: arrays.__setitem__(s["center"]["$array"],
                                                                   np.zeros(5)),
    "missing covariances": lambda s, arrays: s["params"]["$dict"].pop("covariances"),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_crafted_fit_files_are_refused_at_load(case, tmp_path):
    path = tmp_path / "fit.npz"
    probmix.fit(MODEL, X, seed=0).save(path)
    _craft(path, FIT_CASES[case])
    with pytest.raises(SavedFileError, match="Damaged"):
        probmix.load(path)
