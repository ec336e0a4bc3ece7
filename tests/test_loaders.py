"""probmix.io.loaders: data files (CSV, .npy, .npz, HDF5) and model files."""

import io
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probmix.io.loaders import load_data, load_program

h5py = pytest.importorskip("h5py")

X = np.arange(24.0).reshape(8, 3) / 7.0


def _csv(path):
    lines = ["a,b,c"] + [",".join(repr(float(v)) for v in row) for row in X]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- reading


def test_csv_with_header_round_trips_and_picks_columns(tmp_path):
    path = _csv(tmp_path / "d.csv")
    x, names = load_data(path)
    np.testing.assert_array_equal(x, X)
    assert names == ["a", "b", "c"]
    x, names = load_data(path, columns="c, a")
    np.testing.assert_array_equal(x, X[:, [2, 0]])
    assert names == ["c", "a"]


def test_numpy_formats_round_trip(tmp_path):
    np.save(tmp_path / "d.npy", X)
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    np.save(tmp_path / "v.npy", X[:, 0])
    np.savez_compressed(tmp_path / "d.npz", first=X, second=X[:, :2])
    rec = np.rec.fromarrays([X[:, 0], X[:, 1].astype(np.float32)], names="u,v")
    np.save(tmp_path / "r.npy", rec)
    np.testing.assert_array_equal(load_data(tmp_path / "d.npy")[0], X)
    np.testing.assert_array_equal(load_data(tmp_path / "f.npy")[0], X)
    assert load_data(tmp_path / "v.npy")[0].shape == (8, 1)  # 1-D: one feature
    x, names = load_data(tmp_path / "d.npz", dataset="second", columns="1")
    np.testing.assert_array_equal(x, X[:, [1]])
    assert names == ["1"]
    x, names = load_data(tmp_path / "r.npy")
    assert names == ["u", "v"] and np.allclose(x, X[:, :2])


def test_hdf5_dataset_by_name(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["group/x"] = X
        f["other"] = X[:2]
    x, names = load_data(tmp_path / "d.h5", dataset="group/x")
    np.testing.assert_array_equal(x, X)
    with pytest.raises(ValueError, match="2 datasets.*--dataset"):
        load_data(tmp_path / "d.h5")
    with pytest.raises(ValueError, match="'nope'.*group/x"):
        load_data(tmp_path / "d.h5", dataset="nope")


def test_hdf5_without_h5py_names_the_extra(tmp_path, monkeypatch):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = X
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ValueError, match=r"pip install probmix\[h5\]"):
        load_data(tmp_path / "d.h5")


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text, match", [
    ("a,b\n1,2\n3,\n5,6\n", "1 of 3 rows.*line 3"),
    ("a,b\n1,2\n3,inf\n", "1 of 2 rows.*line 3"),
    ("a,b\n1,x\n3,4\n", "non-numeric column.*'b' \\(line 2"),
    ("1,2\n3,4\n", "numbers, not a header"),
    ("a,b\n", "no data rows"),
    ("", "empty"),
    ("a,,c\n1,2,3\n", "empty column name"),
])
def test_csv_errors_name_the_file_and_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        load_data(path)
    assert "bad.csv" in str(err.value)


def test_unknown_column_lists_the_columns(tmp_path):
    with pytest.raises(ValueError, match="no column.*'z'.*a, b, c"):
        load_data(_csv(tmp_path / "d.csv"), columns="a,z")


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_data(tmp_path / "nope.csv")
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown file type '.json'"):
        load_data(tmp_path / "d.json")


class _Payload:
    """Unpickling this writes a file: the proof that a loader ran code."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (Path.write_text, (Path(self.target), "pwned"))


def test_pickled_arrays_are_refused_without_running_them(tmp_path):
    target = tmp_path / "ran.txt"
    payload = np.array([_Payload(target), 1], dtype=object)
    np.save(tmp_path / "obj.npy", payload, allow_pickle=True)
    np.savez(tmp_path / "obj.npz", x=payload)
    for name in ("obj.npy", "obj.npz"):
        with pytest.raises(ValueError, match="Python objects"):
            load_data(tmp_path / name)
    assert not target.exists()
    # a raw pickle renamed .npy is refused too
    (tmp_path / "raw.npy").write_bytes(pickle.dumps(_Payload(target)))
    with pytest.raises(ValueError, match="not a valid .npy"):
        load_data(tmp_path / "raw.npy")
    assert not target.exists()


def test_truncated_npy_declaring_a_huge_array_allocates_nothing(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": (10**12, 10)})
    (tmp_path / "huge.npy").write_bytes(buf.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_data(tmp_path / "huge.npy")


# ----------------------------------------------------------------------------- fuzz


def _valid_files() -> dict:
    """Bytes of one valid file per format."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        out[".csv"] = _csv(d / "d.csv").read_bytes()
        np.save(d / "d.npy", X)
        np.savez_compressed(d / "d.npz", x=X)
        with h5py.File(d / "d.h5", "w") as f:
            f["x"] = X
        for suffix in (".npy", ".npz", ".h5"):
            out[suffix] = (d / f"d{suffix}").read_bytes()
    return out


VALID = _valid_files()


@st.composite
def _damaged(draw):
    suffix = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[suffix])
    if draw(st.booleans()):  # truncated
        data = data[:draw(st.integers(0, len(data) - 1))]
    else:  # corrupted: overwrite a few bytes (biased to the headers, where the structure is)
        for _ in range(draw(st.integers(1, 8))):
            limit = len(data) - 1 if draw(st.booleans()) else min(len(data) - 1, 600)
            data[draw(st.integers(0, limit))] = draw(st.integers(0, 255))
    return suffix, bytes(data)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(_damaged())
def test_fuzz_damaged_files_load_or_raise_value_error(case):
    suffix, data = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f{suffix}"
        path.write_bytes(data)
        try:
            x, names = load_data(path)
        except ValueError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            return
    # a damage that leaves a readable file must still give a clean table
    assert x.dtype == np.float64 and x.ndim == 2 and np.isfinite(x).all()
    assert len(names) == x.shape[1] and x.shape[0] >= 1


# ----------------------------------------------------------------------------- model files

PROGRAM = '''
import pyro, pyro.distributions as dist, torch

def program(x, *, n_components=2):
    k = n_components
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(k, dtype=x.dtype)))
    with pyro.plate("components", k):
        locs = pyro.sample("locs", dist.Normal(torch.zeros(x.shape[1], dtype=x.dtype), 10.0)
                           .to_event(1))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.Normal(locs[z], 1.0).to_event(1), obs=x)
'''


def test_load_program_binds_n_components(tmp_path):
    import torch
    from pyro import poutine

    path = tmp_path / "two.py"
    path.write_text(PROGRAM)
    x = torch.as_tensor(X)
    assert poutine.trace(load_program(path)).get_trace(x).nodes["locs"]["value"].shape == (2, 3)
    three = load_program(path, n_components=3)
    assert poutine.trace(three).get_trace(x).nodes["locs"]["value"].shape == (3, 3)


@pytest.mark.parametrize("source, kwargs, match", [
    ("def model(x):\n    pass\n", {}, "no function named 'program'.*model"),
    ("def program(x):\n    pass\n", {"n_components": 3}, "takes no n_components"),
    ("import not_a_module_xyz\n", {}, "failed to import: ModuleNotFoundError"),
    ("def program(x:\n", {}, "failed to import: SyntaxError"),
])
def test_load_program_errors(tmp_path, source, kwargs, match):
    path = tmp_path / "m.py"
    path.write_text(source)
    with pytest.raises(ValueError, match=match):
        load_program(path, **kwargs)
    with pytest.raises(FileNotFoundError):
        load_program(tmp_path / "none.py")
