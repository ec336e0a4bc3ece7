"""Data files built to mislead or exhaust the loader (issue 17, items 5-8): decompression
bombs, wide CSVs, European CSVs, row-id columns; each read correctly or refused with the fix.
"""

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest

import probmix
from probmix.cli import app as cli
from probmix.io import array_files
from probmix.io.loaders import load_data

h5py = pytest.importorskip("h5py")
RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(0, 1, (40, 2)), RNG.normal(6, 1, (40, 2))])
TRUTH = np.repeat([0, 1], 40)


# ----------------------------------------------------------------------------- item 5: bombs


@pytest.fixture
def small_limit(monkeypatch):
    """A 1 MiB floor instead of 64 MiB, so that the bombs stay small in the test."""
    monkeypatch.setattr(array_files, "MIN_LIMIT_BYTES", 2**20)


def test_npz_bomb_is_refused_before_it_expands(tmp_path, small_limit):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((400_000, 2)))  # 6.4 MB of zeros in ~6 KB
    assert path.stat().st_size < 20_000
    tracemalloc.start()
    with pytest.raises(ValueError, match="expands to.*max_expansion") as err:
        load_data(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20 and "--max-expansion" in str(err.value)
    x, _ = load_data(path, max_expansion=10_000)  # the stated override reads it
    assert x.shape == (400_000, 2) and not x.any()


def test_h5_bomb_is_refused_and_real_compressed_data_loads(tmp_path, small_limit):
    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(400_000, 2), dtype="f8", compression="gzip",
                         chunks=(50_000, 2))  # never written: the fill value, 0 bytes stored
    with pytest.raises(ValueError, match="expands to"):
        load_data(path)
    real = RNG.normal(size=(200_000, 2))  # 3.2 MB, compresses ~1.1x: well within the limit
    with h5py.File(tmp_path / "real.h5", "w") as f:
        f.create_dataset("x", data=real, compression="gzip")
    np.testing.assert_array_equal(load_data(tmp_path / "real.h5")[0], real)
    np.savez_compressed(tmp_path / "real.npz", x=real)
    np.testing.assert_array_equal(load_data(tmp_path / "real.npz")[0], real)


def test_npy_loads_writable_without_a_torch_warning(tmp_path):
    np.save(tmp_path / "x.npy", X)
    x, _ = load_data(tmp_path / "x.npy")
    assert x.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probmix.as_data(x)


# ----------------------------------------------------------------------------- item 6: wide


def _wide_csv(path, n, d):
    x = RNG.normal(size=(n, d))
    pd.DataFrame(x, columns=[f"c{i}" for i in range(d)]).to_csv(path, index=False,
                                                                 float_format="%.6f")
    return x


@pytest.mark.parametrize("n, d", [(60, 2000), (200, 600)])
def test_wide_csv_parses_in_memory_proportional_to_the_file(tmp_path, n, d):
    path = tmp_path / "wide.csv"
    x = _wide_csv(path, n, d)
    tracemalloc.start()
    got, names = load_data(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(got, x, atol=1e-6)
    assert len(names) == d and peak < 12 * path.stat().st_size


def test_a_header_wider_than_the_sniffed_sample_is_read(tmp_path):
    """20,000 columns: the header alone is ~200 KB, beyond the 64 KiB sample and csv's
    131,072-character field limit for the delimiters that do not split it."""
    path = tmp_path / "very_wide.csv"
    x = _wide_csv(path, 3, 20_000)
    got, names = load_data(path)
    assert got.shape == (3, 20_000) and names[-1] == "c19999"
    np.testing.assert_allclose(got, x, atol=1e-6)


def test_wide_data_with_full_covariances_is_refused_before_allocating(monkeypatch):
    from probmix.infer.map import em_data, em_steps

    # the E-step chunk of wide data stays bounded: 64 MiB, or one point (D = 8,000: Φ has
    # 32 M numbers per point; the chunk was 2,048 points, 15 GB for the audit's 60 rows)
    for d in (300, 1000, 3000):
        n_phi = 1 + d + d * (d + 1) // 2
        assert em_steps.chunk_rows(8, n_phi) * 8 * n_phi <= 64 * 2**20
    n_phi = 1 + 8000 + 8000 * 8001 // 2
    assert em_steps.chunk_rows(8, n_phi) == 1
    assert em_steps.chunk_rows(8, 6) == 16384  # narrow data keeps its large chunks
    assert em_data.auto_restarts("auto", 60, 2, n_phi, 8) == 1
    assert em_data.auto_restarts("auto", 60, 2, 1 + 2 + 3, 8) == em_data.AUTO_RESTARTS
    monkeypatch.setattr(em_data, "_physical_memory", lambda: 2**30)  # a 1 GiB machine
    x = RNG.normal(size=(60, 800))
    with pytest.raises(MemoryError, match="covariance='full' on 800 features.*'diag'"):
        probmix.fit(probmix.GaussianMixture(2), x)
    fit = probmix.fit(probmix.GaussianMixture(2, covariance="diag"), x, seed=0)
    assert fit.means.shape == (2, 800)


def test_wide_data_is_featurised_in_bounded_pieces(monkeypatch):
    """Φ(x) has ~D²/2 numbers per row: EM keeps it only up to 256 times x's size, and
    predictions build it in pieces of at most 64 MiB (was 2,048 rows: 7 GB at D = 3,000)."""
    import torch

    from probmix.infer.map.em_steps import PreparedData
    from probmix.model.covariance import get_family

    full = get_family("full")
    assert PreparedData(torch.as_tensor(RNG.normal(size=(50, 10))), full).blocks is not None
    assert PreparedData(torch.as_tensor(RNG.normal(size=(50, 600))), full).blocks is None
    x = RNG.normal(size=(300, 120))
    fit = probmix.fit(probmix.GaussianMixture(2, covariance="diag"), x, seed=0)
    widths = []
    features = type(full).features

    def spy(self, xt):
        widths.append(xt.shape[1] * (1 + xt.shape[0] + self.n_quadratic(xt.shape[0])) * 8)
        return features(self, xt)

    monkeypatch.setattr(type(full), "features", spy)
    model = probmix.GaussianMixture(2)
    params = {"weights": fit.weights[None], "means": fit.means[None],
              "covariances": fit.covariances[None]}
    import probmix.model.gaussian_mixture as gm

    monkeypatch.setattr(gm, "_MAX_CHUNK_BYTES", 2**20)  # 1 MiB pieces: 7,381 numbers a row
    out = model.log_joint(params, torch.as_tensor(x))
    assert out.shape == (1, 300, 2) and max(widths) <= 2**20 and len(widths) > 1
    monkeypatch.setattr(gm, "_MAX_CHUNK_BYTES", 2**40)
    widths.clear()
    np.testing.assert_allclose(model.log_joint(params, torch.as_tensor(x)), out, rtol=1e-12)
    assert len(widths) == 1


def test_cli_reports_out_of_memory_in_one_line(tmp_path, capsys, monkeypatch):
    from probmix.infer.map import em_data

    monkeypatch.setattr(em_data, "_physical_memory", lambda: 2**30)
    _wide_csv(tmp_path / "w.csv", 30, 800)
    code = cli.main(["fit", str(tmp_path / "w.csv"), "-k", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "out of memory" in err and "diag" in err


# ----------------------------------------------------------------------------- item 7: Europe


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_european_csv_is_sniffed(tmp_path):
    rows = "\n".join(f"{a:.3f};{b:.3f}".replace(".", ",") for a, b in X)
    x, names = load_data(_write(tmp_path / "eu.csv", "u;v\n" + rows + "\n"))
    assert names == ["u", "v"]
    np.testing.assert_allclose(x, X, atol=1e-3)
    tab = "\n".join(f"{float(a)!r}\t{float(b)!r}" for a, b in X.tolist())
    np.testing.assert_array_equal(load_data(_write(tmp_path / "t.csv", "u\tv\n" + tab))[0], X)


def test_the_audit_case_fits_two_columns_or_is_refused(tmp_path, capsys):
    path = _write(tmp_path / "eu.csv", "u;v\n1,5;2,5\n3,5;4,5\n")
    x, names = load_data(path)
    assert names == ["u", "v"] and x.tolist() == [[1.5, 2.5], [3.5, 4.5]]
    one = _write(tmp_path / "one.csv", "u\n1,5\n2,5\n3,5\n")  # a column of decimal commas
    with pytest.raises(ValueError, match="--delimiter ';' --decimal ','"):
        load_data(one)
    x, _ = load_data(one, delimiter=";", decimal=",")
    assert x[:, 0].tolist() == [1.5, 2.5, 3.5]
    code = cli.main(["fit", str(one), "-k", "1", "--delimiter", ";", "--decimal", ","])
    assert code == 0, capsys.readouterr().err


def test_inconsistent_rows_are_refused_not_dropped(tmp_path):
    with pytest.raises(ValueError, match="delimiter"):
        load_data(_write(tmp_path / "bad.csv", "a,b\n1,2\n3,4,5\n6,7\n"))


def test_binary_and_non_utf8_files_get_their_own_message(tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"\x00\x01\x02a,b\n\x00")
    with pytest.raises(ValueError, match="binary file"):
        load_data(tmp_path / "bin.csv")
    (tmp_path / "latin.csv").write_bytes("a,b\n1,2\n\xe9,3\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_data(tmp_path / "latin.csv")


# ----------------------------------------------------------------------------- item 8: ids


def _ari(a, b):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


@pytest.mark.parametrize("style", ["r-row-names", "pandas-index", "id-1-to-n", "named-id"])
def test_a_leading_id_column_is_left_out_with_a_warning(tmp_path, style):
    frame = pd.DataFrame(X, columns=["u", "v"])
    path = tmp_path / "d.csv"
    if style == "r-row-names":  # R's write.csv: "","u","v" then "1",...
        lines = ['"","u","v"'] + [f'"{i + 1}",{a!r},{b!r}' for i, (a, b) in enumerate(X.tolist())]
        path.write_text("\n".join(lines) + "\n")
    elif style == "pandas-index":
        frame.to_csv(path)
    elif style == "id-1-to-n":
        frame.insert(0, "id", np.arange(1, len(X) + 1))
        frame.to_csv(path, index=False)
    else:  # named id, shuffled values: not consecutive, but distinct
        frame.insert(0, "ID", RNG.permutation(len(X)) * 7 + 1000)
        frame.to_csv(path, index=False)
    with pytest.warns(UserWarning, match="looks like a row id.*--columns"):
        x, names = load_data(path)
    assert names == ["u", "v"]
    np.testing.assert_allclose(x, X)
    fit = probmix.fit(probmix.GaussianMixture(2), x, seed=0)
    assert _ari(fit.predict(x), TRUTH) > 0.95


def test_exclude_and_explicit_columns(tmp_path):
    frame = pd.DataFrame(X, columns=["u", "v"])
    frame.insert(1, "batch", RNG.integers(0, 9, len(X)))
    frame.to_csv(tmp_path / "d.csv", index=False)
    x, names = load_data(tmp_path / "d.csv", exclude="batch")
    assert names == ["u", "v"]
    with pytest.raises(ValueError, match="no column.*'nope' to exclude"):
        load_data(tmp_path / "d.csv", exclude="nope")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a feature column that merely counts up: kept
        frame = pd.DataFrame({"t": np.arange(len(X)) * 0.5, "u": X[:, 0]})
        frame.to_csv(tmp_path / "t.csv", index=False)
        assert load_data(tmp_path / "t.csv")[1] == ["t", "u"]
        np.save(tmp_path / "a.npy", np.column_stack([np.arange(len(X)), X]))
        x, names = load_data(tmp_path / "a.npy", exclude="0")
        assert names == ["1", "2"]
