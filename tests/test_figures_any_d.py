"""Every figure, for D = 1, 2, 4 and 13 (wine's shape), with column names from a DataFrame:
axes labelled by name (or by directions made of named columns), files written (issue 19)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import probmix
from probmix import plot

DIMS = (1, 2, 4, 13)


def _frame(d: int, n_per: int = 50, seed: int = 0):
    """Three clusters apart in the first two columns, noise in the rest; columns of unlike
    scales (one in the thousands, as wine's proline) and names with spaces and units."""
    rng = np.random.default_rng(seed)
    source = np.repeat(np.arange(3), n_per)
    centres = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, -1.0]])[:, : max(1, min(d, 2))]
    x = rng.normal(size=(3 * n_per, d))
    x[:, : centres.shape[1]] += centres[source]
    x *= np.geomspace(1.0, 1000.0, d)
    names = [f"col {j} (unit{j})" for j in range(d)]
    return pd.DataFrame(x, columns=names), source


@pytest.fixture(scope="module", params=DIMS, ids=[f"D={d}" for d in DIMS])
def case(request):
    d = request.param
    df, source = _frame(d)
    model = probmix.GaussianMixture(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short Gibbs run's r_hat
        fits = {"MAP": probmix.fit(model, df, standardize=d > 2, seed=0),
                "CAVI": probmix.fit(model, df, engine="svi", method="cavi", num_draws=40,
                                    standardize=d > 2, seed=0),
                "Gibbs": probmix.fit(model, df, engine="mcmc", method="gibbs", num_samples=40,
                                     num_warmup=40, num_chains=2, progress=False, seed=0)}
    return d, df, source, fits


def _labels(fig: Figure) -> list[str]:
    return [t for ax in fig.axes for t in (ax.get_xlabel(), ax.get_ylabel()) if t]


def _named(label: str, names) -> bool:
    """The label is a column's name, or a direction that names its columns."""
    return label in names or (label[:2] in ("PC", "DR") and any(n in label for n in names))


def _save(fig, path):
    assert isinstance(fig, Figure)
    fig.savefig(path, dpi=50)
    assert path.stat().st_size > 1000


def test_mixture_figures_name_their_axes(case, tmp_path):
    d, df, source, fits = case
    names = list(df.columns)
    assert all(f.feature_names == names for f in fits.values())
    fit, cavi = fits["MAP"], fits["CAVI"]
    figures = {"clusters": plot.clusters(fit, df),
               "guessed_vs_true": plot.guessed_vs_true(fit, df, source),
               "classification_uncertainty": plot.classification_uncertainty(fit, df),
               "pairs": plot.pairs(fit, df)}
    if d >= 2:
        figures["uncertainty"] = plot.uncertainty(cavi, df, n_draws=5)
        figures["compare"] = plot.compare(fits, df, n_draws=5)
    for name, fig in figures.items():
        _save(fig, tmp_path / f"{name}.png")
    # the data's own axes carry the column names; beyond two columns, named directions
    ax = figures["clusters"].axes[0]
    if d <= 2:
        assert [ax.get_xlabel(), ax.get_ylabel()][:d] == names[:2][:d]
    else:
        assert ax.get_xlabel().startswith("PC1") and ax.get_ylabel().startswith("PC2")
        assert "standardised" in ax.get_xlabel()  # projected in the units of the fit
        assert _named(ax.get_xlabel(), names) and _named(ax.get_ylabel(), names)
    for name in ("clusters", "uncertainty", "compare", "guessed_vs_true"):
        if name in figures:
            assert all(_named(t, names) or t == "density" for t in _labels(figures[name])), name
    # pairs: every column on the outer axes up to 8 columns, four named directions above
    grid = figures["pairs"]
    m = d if d <= 8 else 4
    assert len(grid.axes) == m * m
    bottom = [ax.get_xlabel() for ax in grid.axes[-m:]]
    if d <= 8:
        assert bottom == names
    else:
        assert bottom == ["DR1", "DR2", "DR3", "DR4"]
        legend = grid.get_supxlabel()
        assert legend.count("DR") == 4 and sum(n in legend for n in names) >= 2
    # ellipses: 1σ and 2σ per component in each off-diagonal panel
    off = [ax for i, ax in enumerate(grid.axes) if i // m != i % m]
    assert all(len(ax.patches) == 6 for ax in off)
    # uncertainty: largest first, within [0, 1 - 1/K]
    unc = figures["classification_uncertainty"].axes[0].lines[0].get_ydata()
    assert np.all(np.diff(unc) <= 0) and unc.min() >= 0 and unc.max() <= 2 / 3 + 1e-12


def test_run_figures(case, tmp_path):
    d, df, _, fits = case
    loss = plot.loss_curve(fits["CAVI"])
    assert loss.axes[0].get_title().startswith("CAVI") and "ELBO" in loss.axes[0].get_ylabel()
    assert not loss.axes[0].yaxis.get_major_formatter().get_offset()  # plain values
    _save(loss, tmp_path / "loss.png")
    _save(plot.trace(fits["Gibbs"], var_names=("weights",)), tmp_path / "trace.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = probmix.select(df, range(1, 4), covariance="full")
    _save(plot.criterion(sel), tmp_path / "criterion.png")


@pytest.mark.parametrize("d", DIMS)
def test_cli_writes_every_figure_with_named_axes(d, tmp_path, figures):
    from probmix.cli import main

    saved = figures
    df, _ = _frame(d)
    data = tmp_path / "data.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "out"
    args = ["fit", str(data), "-k", "3", "--engine", "svi", "--draws", "30", "--out", str(out),
            "--quiet"] + (["--standardize"] if d > 2 else [])
    assert main(args) == 0
    expected = {"clusters.png", "pairs.png", "classification_uncertainty.png", "loss.png"}
    expected |= {"uncertainty.png"} if d >= 2 else set()
    assert expected <= {p.name for p in out.iterdir()}
    names = list(df.columns)
    for name in ("clusters.png", "uncertainty.png"):
        if name in saved:
            assert all(_named(t, names) or t == "density" for t in _labels(saved[name])), name
    assert main(["select", str(data), "--k", "1:3", "--covariance", "VVV,EII", "--out",
                 str(tmp_path / "sel"), "--quiet"]) == 0
    assert (tmp_path / "sel" / "criterion.png").stat().st_size > 1000
