"""The command line: probmix fit / compare / select on data files, errors, outputs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import probmix
from probmix.cli import app as cli
from probmix.io.datasets import THREE_CLUSTERS

X, SOURCE = probmix.three_clusters(60, seed=1)


def _csv(path, x=X, extra=True):
    lines = ["alpha,beta" + (",tag" if extra else "")]
    lines += [f"{a!r},{b!r}" + (f",t{i}" if extra else "") for i, (a, b) in
              enumerate(x.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _assert_has_data(fig):
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        assert ax.collections or ax.lines or ax.patches or ax.images, ax.get_title()


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _matched(means):
    """Fitted means in the order of the true ones."""
    order = [int(np.argmin(np.linalg.norm(means - m, axis=1))) for m in THREE_CLUSTERS["means"]]
    return np.asarray(means)[order], order


# ----------------------------------------------------------------------------- fit


def test_fit_map_on_a_csv_writes_labels_parameters_and_figures(tmp_path, capsys, figures):
    data = _csv(tmp_path / "d.csv")
    code, out, err = _run(capsys, "fit", data, "-k", 3, "--columns", "alpha,beta", "--out",
                          tmp_path / "o", "--quiet")
    assert code == 0, err
    assert "weights and means" in out and "BIC" in out
    assert "alpha~beta" in out  # the table names the correlated columns
    params = json.loads((tmp_path / "o" / "parameters.json").read_text())
    assert params["estimate"] == "posterior mode" and params["columns"] == ["alpha", "beta"]
    means, order = _matched(np.array(params["parameters"]["means"]))
    np.testing.assert_allclose(means, THREE_CLUSTERS["means"], atol=0.6)
    # the CLI's fit is probmix.fit's
    direct = probmix.fit(probmix.GaussianMixture(3), X, seed=0)
    np.testing.assert_allclose(params["parameters"]["means"], direct.means, rtol=1e-6)
    table = np.loadtxt(tmp_path / "o" / "labels.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(table[:, 0], direct.predict(X))
    np.testing.assert_allclose(table[:, 1:].sum(1), 1, atol=1e-4)
    assert np.mean(np.asarray(order)[SOURCE] == table[:, 0]) > 0.97
    assert set(figures) == {"clusters.png", "pairs.png", "classification_uncertainty.png"}
    _assert_has_data(figures["clusters.png"])
    assert figures["clusters.png"].axes[0].get_xlabel() == "alpha"
    assert (tmp_path / "o" / "clusters.png").stat().st_size > 0


def test_fit_standardized_cavi_reports_original_units(tmp_path, capsys, figures):
    scaled = X * np.array([1000.0, 0.01]) + np.array([5e4, 3.0])  # columns of unlike units
    data = _csv(tmp_path / "d.csv", scaled, extra=False)
    code, out, err = _run(capsys, "fit", data, "-k", 3, "--engine", "svi", "--method", "cavi",
                          "--standardize", "--draws", 300, "--out", tmp_path / "o", "--quiet")
    assert code == 0, err
    assert "original units" in out
    params = json.loads((tmp_path / "o" / "parameters.json").read_text())["parameters"]
    # oracle: the columns' units do not matter, the fit equals CAVI on X mapped to those units
    direct = probmix.fit(probmix.GaussianMixture(3), X, engine="svi", method="cavi", seed=0)
    scale = np.array([1000.0, 0.01])
    means = (np.array(params["means"]["mean"]) - [5e4, 3.0]) / scale  # back in X's units
    np.testing.assert_allclose(means, direct.means, atol=0.01)  # up to CAVI's tolerance
    np.testing.assert_allclose(params["covariances"]["mean"],
                               direct.covariances * np.outer(scale, scale), rtol=0.01)
    np.testing.assert_allclose(params["means"]["sd"],
                               direct.draws["means"].std(axis=(0, 1)) * scale, rtol=0.15)
    low, high = np.array(params["means"]["low"]), np.array(params["means"]["high"])
    assert np.all(low < params["means"]["mean"]) and np.all(params["means"]["mean"] < high)
    import xarray as xr

    tree = xr.open_datatree(tmp_path / "o" / "arviz.nc")
    assert tree["posterior"]["means"].shape == (1, 300, 3, 2)
    drawn = tree["posterior"]["means"].mean(("chain", "draw")).to_numpy()
    # CAVI reports its exact posterior means; the 300 stored draws average to them within MC error
    assert np.all(np.abs(drawn - params["means"]["mean"]) < 4 * np.array(params["means"]["sd"])
                  / np.sqrt(300))
    assert {"clusters.png", "uncertainty.png"} <= set(figures)
    for fig in figures.values():
        _assert_has_data(fig)


def test_fit_gibbs_from_h5_writes_trace_and_one_line_warnings(tmp_path, capsys, figures):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["points/x"] = X
        f["other"] = X[:5]
    code, out, err = _run(capsys, "fit", tmp_path / "d.h5", "--dataset", "points/x", "-k", 3,
                          "--engine", "mcmc", "--method", "gibbs", "--draws", 60, "--chains", 2,
                          "--covariance", "diag", "--out", tmp_path / "o", "--quiet")
    assert code == 0, err
    assert all(line.startswith("probmix: warning:") for line in err.splitlines())
    params = json.loads((tmp_path / "o" / "parameters.json").read_text())
    assert params["method"] == "gibbs" and np.shape(params["parameters"]["means"]["sd"]) == (3, 2)
    _assert_has_data(figures["trace.png"])


def test_kmeans_and_meanshift_baselines(tmp_path, capsys, figures):
    np.save(tmp_path / "d.npy", X)
    code, out, err = _run(capsys, "fit", tmp_path / "d.npy", "-k", 3, "--engine", "kmeans",
                          "--out", tmp_path / "k")
    assert code == 0, err
    params = json.loads((tmp_path / "k" / "parameters.json").read_text())
    km = probmix.KMeans(3, seed=0).fit(X)
    np.testing.assert_allclose(params["cluster_centers"], km.cluster_centers_)
    np.testing.assert_allclose(params["inertia"], km.inertia_, rtol=1e-6)
    code, out, err = _run(capsys, "fit", tmp_path / "d.npy", "--engine", "meanshift",
                          "--standardize", "--out", tmp_path / "m")
    assert code == 0, err
    params = json.loads((tmp_path / "m" / "parameters.json").read_text())
    np.testing.assert_allclose(_matched(np.array(params["cluster_centers"]))[0],
                               THREE_CLUSTERS["means"], atol=0.7)
    _assert_has_data(figures["clusters.png"])


PROGRAM = '''
import pyro, pyro.distributions as dist, torch

def program(x, *, n_components=2):
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(n_components, dtype=x.dtype)))
    with pyro.plate("components", n_components):
        locs = pyro.sample("locs", dist.Normal(torch.zeros(x.shape[1], dtype=x.dtype), 10.0)
                           .to_event(1))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.Normal(locs[z], 1.0).to_event(1), obs=x)
'''


def test_fit_a_model_file(tmp_path, capsys, figures):
    (tmp_path / "two.py").write_text(PROGRAM)
    x = np.concatenate([X[SOURCE == 0], X[SOURCE == 1]])
    np.save(tmp_path / "d.npy", x)
    code, out, err = _run(capsys, "fit", tmp_path / "d.npy", "--model", tmp_path / "two.py",
                          "-k", 2, "--out", tmp_path / "o", "--quiet")
    assert code == 0, err
    params = json.loads((tmp_path / "o" / "parameters.json").read_text())["parameters"]
    locs = np.array(params["locs"])
    true = THREE_CLUSTERS["means"][:2]
    locs = locs if np.linalg.norm(locs[0] - true[0]) < 1 else locs[::-1]
    np.testing.assert_allclose(locs, true, atol=0.5)
    _assert_has_data(figures["clusters.png"])


# ----------------------------------------------------------------------------- compare, select


def test_compare_puts_every_engine_in_one_order(tmp_path, capsys, figures):
    data = _csv(tmp_path / "d.csv", extra=False)
    code, out, err = _run(capsys, "compare", data, "-k", 3, "--draws", 100, "--out",
                          tmp_path / "o", "--quiet")
    assert code == 0, err
    assert "MAP (EM)" in out and "SVI (CAVI)" in out and "MCMC (Gibbs)" in out
    import pandas as pd

    table = pd.read_csv(tmp_path / "o" / "compare.csv", index_col=0)
    means = table.filter(like=" mean").loc[[i for i in table.index if i.startswith("means")]]
    # same component in every row: the engines agree row by row
    assert np.ptp(means.to_numpy(), axis=1).max() < 0.2
    _assert_has_data(figures["compare.png"])


def test_compare_relabels_a_permuted_fit():
    model = probmix.GaussianMixture(3)
    result = probmix.compare(model, X, engines={"a": dict(engine="map"),
                                                "b": dict(engine="svi", method="cavi")})
    a, b = result.fits["a"], result.fits["b"]
    assert np.abs(a.means - b.means).max() < 0.2
    # _permuted reorders every component-indexed quantity consistently
    from probmix.results.compare import _component_axes, _permuted

    perm = np.array([2, 0, 1])
    p = _permuted(b, perm, _component_axes(b, X))
    np.testing.assert_allclose(p.means, b.means[perm])
    np.testing.assert_allclose(p.draws["means"], b.draws["means"][:, :, perm])
    np.testing.assert_allclose(p.predict_proba(X), b.predict_proba(X)[:, perm], atol=1e-12)
    assert result.table.shape == (3 + 6, 4)


def test_compare_warns_that_vi_intervals_are_narrow_and_measures_it():
    result = probmix.compare(probmix.GaussianMixture(3), X, engines={
        "vi": dict(engine="svi", method="cavi"),
        "mc": dict(engine="mcmc", method="gibbs", num_samples=200, num_warmup=100)})
    notes = result.notes()
    assert any("too narrow" in line for line in notes)
    ratio = result.table[("vi", "sd")] / result.table[("mc", "sd")]
    line = next(line for line in notes if line.startswith("vi sd / mc sd"))
    assert f"min {ratio.min():.2f}" in line and f"max {ratio.max():.2f}" in line
    assert line in result.to_string()
    alone = probmix.compare(probmix.GaussianMixture(3), X, engines={"m": dict(engine="map")})
    assert alone.notes() == []


def test_select_bic_is_invariant_to_standardizing(tmp_path, capsys, figures):
    import pandas as pd

    data = _csv(tmp_path / "d.csv", X * [10.0, 0.1], extra=False)
    tables = []
    for extra in ([], ["--standardize"]):
        # K = 2 is left out: with three clusters its EM optimum depends on the start
        code, out, err = _run(capsys, "select", data, "--k", "1,3,4", "--covariance", "full",
                              "--prior", "flat", "--out", tmp_path / f"o{len(extra)}", "--quiet",
                              *extra)
        assert code == 0, err
        assert "best number of components: 3" in out
        tables.append(pd.read_csv(tmp_path / f"o{len(extra)}" / "selection.csv"))
    numbers = ["loglik", "bic"]
    np.testing.assert_allclose(tables[0][numbers], tables[1][numbers], rtol=1e-3)
    direct = probmix.select(X * [10.0, 0.1], [1, 3, 4], covariance="full", prior="flat")
    np.testing.assert_allclose(tables[0]["bic"], direct.table["bic"], rtol=1e-9)
    assert list(tables[0]["covariance"]) == ["VVV"] * 3
    _assert_has_data(figures["criterion.png"])


def test_select_over_all_covariance_models(tmp_path, capsys, figures):
    import pandas as pd

    data = Path(__file__).parent / "data" / "faithful.csv"  # mclust's pick: EEE, K = 3
    code, out, err = _run(capsys, "select", data, "--covariance", "all", "--k", "1:3",
                          "--max-iter", 1000, "--out", tmp_path / "o", "--quiet")
    assert code == 0, err
    assert "best 3 models by BIC" in out and "lower is better" in out
    table = pd.read_csv(tmp_path / "o" / "selection.csv")
    assert len(table) == 14 * 3 and set(table["k"]) == {1, 2, 3}
    assert list(table.columns) == ["covariance", "k", "loglik", "n_parameters", "bic",
                                   "converged", "refined"]
    best = table.loc[table["bic"].idxmin()]
    assert f"best model: covariance {best['covariance']}, {best['k']} components" in out
    fig = figures["criterion.png"]
    assert len([ln for ln in fig.axes[0].get_lines() if ln.get_label() in set(table.covariance)]) \
        == 14
    code, out, err = _run(capsys, "select", data, "--covariance", "VVV,EEE", "--k", "2,3",
                          "--criterion", "icl", "--quiet")
    assert code == 0, err
    assert "2 covariance models (VVV,EEE)" in out and "icl diff" in out
    code, out, err = _run(capsys, "select", data, "--covariance", "VVV,XYZ", "--quiet")
    assert code == 2 and "XYZ" in err


# ----------------------------------------------------------------------------- registry


def test_fit_online_em(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", extra=False)
    code, out, err = _run(capsys, "fit", data, "-k", 3, "--method", "online", "--quiet")
    assert code == 0, err
    assert "map fit (online)" in out and "one pass, no convergence test" in out
    direct = probmix.fit(probmix.GaussianMixture(3), X, method="online", seed=0)
    assert f"{direct.means[0, 0]:10.4g}" in out


@pytest.fixture
def engine_calls(monkeypatch):
    """The options every probmix.fit call of a command received."""
    from probmix.infer import dispatch

    calls, real = [], dispatch.fit

    def record(model, x, **options):
        calls.append(options)
        return real(model, x, **options)

    monkeypatch.setattr(dispatch, "fit", record)
    return calls


def test_optimizer_flags_reach_the_engines(tmp_path, capsys, engine_calls):
    data = _csv(tmp_path / "d.csv", extra=False)
    flags = ["--tol", "1e-4", "--n-init", "2", "--max-iter", "50", "--quiet"]
    code, _, err = _run(capsys, "fit", data, "-k", 3, *flags)
    assert code == 0, err
    assert engine_calls[-1]["method"] == "em"
    assert (engine_calls[-1]["tol"], engine_calls[-1]["n_init"],
            engine_calls[-1]["max_iter"]) == (1e-4, 2, 50)
    engine_calls.clear()
    code, _, err = _run(capsys, "select", data, "--k", "1:2", *flags)
    assert code == 0, err
    # K = 1, 2 × mclust's 14 models screened with the loose stop, then the fits near the best
    # refined (warm-started) with the flags' stopping rule
    screened = [c for c in engine_calls if "warm_start" not in c]
    refined = [c for c in engine_calls if "warm_start" in c]
    assert len(screened) == 2 * 14 and refined
    assert all((c["stop"], c["tol"]) == ("change", 1e-5) for c in screened)
    assert all(c["tol"] == 1e-4 and "stop" not in c for c in refined)
    assert all((c["n_init"], c["max_iter"]) == (2, 50) for c in engine_calls)
    engine_calls.clear()
    code, _, err = _run(capsys, "compare", data, "-k", 3, "--draws", 20, "--tol", "1e-4",
                        "--max-iter", "50", "--quiet")
    assert code == 0, err
    by_method = {c["method"]: c for c in engine_calls}
    assert (by_method["em"]["tol"], by_method["em"]["max_iter"]) == (1e-4, 50)
    assert (by_method["cavi"]["tol"], by_method["cavi"]["max_iter"]) == (1e-4, 50)
    assert "tol" not in by_method["gibbs"]  # a sampler has no tolerance
    code, _, err = _run(capsys, "fit", data, "-k", 3, "--engine", "kmeans", "--n-init", 3,
                        "--max-iter", 20, "--tol", "1e-3", "--quiet")
    assert code == 0, err


@pytest.mark.parametrize("argv, expected", [
    (["fit", "-k", "2", "--engine", "mcmc", "--tol", "1e-3"],  # Gibbs: the default, as compare's
     "--tol does not apply to --engine mcmc --method gibbs"),
    (["fit", "-k", "2", "--engine", "mcmc", "--method", "nuts", "--tol", "1e-3"],
     "--tol does not apply to --engine mcmc --method nuts"),
    (["fit", "-k", "2", "--method", "online", "--max-iter", "5"],
     "--max-iter does not apply to --engine map --method online"),
    (["fit", "-k", "2", "--engine", "svi", "--method", "gibbs"],
     "method must be one of ('stochastic', 'cavi') for engine='svi'"),
    (["fit", "-k", "2", "--engine", "meanshift", "--n-init", "2"],
     "--n-init does not apply to --engine meanshift"),
    (["compare", "-k", "2", "--engines", "mcmc", "--n-init", "2"],
     "--n-init applies to none of the engines compared: mcmc (gibbs)"),
    (["select", "--k", "1:2", "--criterion", "waic", "--tol", "1e-3"],
     "--tol does not apply to --engine mcmc --method gibbs"),
])
def test_flags_an_engine_does_not_take_are_errors_naming_it(tmp_path, capsys, argv, expected):
    data = _csv(tmp_path / "d.csv", extra=False)
    code, _, err = _run(capsys, argv[0], data, *argv[1:])
    assert code == 2 and err.count("\n") == 1, err
    assert expected in err


def test_fit_and_compare_default_to_the_same_closed_forms(tmp_path, capsys):
    from probmix.results.compare import DEFAULT_METHODS

    data = _csv(tmp_path / "d.csv", extra=False)
    for engine in ("svi", "mcmc"):
        code, out, err = _run(capsys, "fit", data, "-k", "2", "--engine", engine, "--draws",
                              "20", "--quiet")
        assert code == 0, err
        assert f"{engine} fit ({DEFAULT_METHODS[engine]['method']})" in out


# ----------------------------------------------------------------------------- errors


def _nan_csv(path):
    path.write_text("a,b\n1,2\n3,\n4,5\n")
    return path


@pytest.mark.parametrize("argv, expected", [
    (["fit", "{tmp}/missing.csv", "-k", "2"], "no such data file"),
    (["fit", "{csv}", "-k", "2", "--columns", "alpha,gamma"], "no column(s) 'gamma'"),
    (["fit", "{nan}", "-k", "2"], "1 of 3 rows hold NaN"),
    (["fit", "{csv}", "-k", "0", "--columns", "alpha"], "-k must be at least 1"),
    (["fit", "{csv}", "-k", "1000", "--columns", "alpha"], "more than the 180 points"),
    (["fit", "{csv}", "-k", "2", "--engine", "bogus"], "invalid choice: 'bogus'"),
    (["fit", "{csv}", "-k", "2", "--columns", "alpha", "--model", "{tmp}/m.py"],
     "no such model file"),
    (["fit", "{csv}", "--columns", "alpha"], "pass -k K"),
    (["fit", "{csv}", "-k", "2", "--engine", "meanshift", "--columns", "alpha"], "drop -k"),
    (["select", "{csv}", "--k", "one:8", "--columns", "alpha"], "range like 1:8"),
    (["compare", "{csv}", "-k", "2", "--columns", "alpha", "--engines", "map,em"],
     "--engines takes"),
])
def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys, argv, expected):
    paths = {"tmp": tmp_path, "csv": _csv(tmp_path / "d.csv"), "nan": _nan_csv(tmp_path / "n.csv")}
    code, out, err = _run(capsys, *[a.format(**paths) for a in argv])
    assert code == 2
    assert err.startswith("probmix: error:") and err.count("\n") == 1, err
    assert expected in err


def test_cli_end_to_end_in_subprocesses(tmp_path):
    """fit on a CSV with a header, a bad input and a usage error, as a user runs them (the
    other error paths run in-process above: each process start imports torch)."""
    data = _csv(tmp_path / "d.csv")
    runs = {
        "fit": ["fit", data, "-k", "3", "--columns", "alpha,beta", "--out", tmp_path / "o"],
        "missing": ["fit", tmp_path / "missing.csv", "-k", "3"],
        "engine": ["fit", data, "-k", "3", "--engine", "bogus"],
    }
    results = {name: subprocess.run([sys.executable, "-m", "probmix.cli", *map(str, argv)],
                                    capture_output=True, text=True, timeout=300)
               for name, argv in runs.items()}
    fit = results.pop("fit")
    assert fit.returncode == 0, fit.stderr
    assert "weights and means" in fit.stdout and "Traceback" not in fit.stderr
    for name in ("labels.csv", "parameters.json", "clusters.png"):
        assert (tmp_path / "o" / name).stat().st_size > 0
    for name, run in results.items():
        assert run.returncode == 2, (name, run.stderr)
        assert run.stderr.startswith("probmix: error:") and run.stderr.count("\n") == 1, name
        assert "Traceback" not in run.stderr


def test_init_flag_reaches_fit_and_select(tmp_path, capsys, engine_calls, monkeypatch):
    """--init sets the start of fit's method and of every fit of select (mclust's start:
    select is Mclust(X)); a baseline without an init option, or a bad name, is an error."""
    data = _csv(tmp_path / "d.csv", extra=False)
    code, _, err = _run(capsys, "fit", data, "-k", 3, "--init", "mclust", "--quiet")
    assert code == 0, err
    assert engine_calls[-1]["init"] == "mclust"
    selects, real = [], probmix.select
    monkeypatch.setattr(probmix, "select", lambda *a, **kw: selects.append(kw) or real(*a, **kw))
    code, out, err = _run(capsys, "select", data, "--k", "1:3", "--covariance", "VVV,EII",
                          "--init", "hc", "--quiet", "--out", tmp_path / "s")
    assert code == 0, err
    assert selects[-1]["init"] == "hc"
    direct = real(X, [1, 2, 3], covariance=["VVV", "EII"], init="hc")
    rows = (tmp_path / "s" / "selection.csv").read_text().splitlines()
    bic = [float(r.split(",")[rows[0].split(",").index("bic")]) for r in rows[1:]]
    np.testing.assert_allclose(sorted(bic), sorted(direct.table["bic"]), rtol=0, atol=1e-6)
    code, _, err = _run(capsys, "fit", data, "-k", 3, "--engine", "kmeans", "--init", "random",
                        "--quiet")
    assert code == 0, err
    code, _, err = _run(capsys, "fit", data, "--engine", "meanshift", "--init", "random")
    assert code == 2 and "--init does not apply to --engine meanshift" in err
    code, _, err = _run(capsys, "select", data, "--k", "1:2", "--init", "nope", "--quiet")
    assert code == 2 and "init must be one of" in err
