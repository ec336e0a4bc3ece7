"""probmix.plot: figures are built without pyplot state and show what they claim."""

import warnings

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

import probmix
from probmix import plot


@pytest.fixture(scope="module")
def data():
    return probmix.three_clusters(100, seed=0)


@pytest.fixture(scope="module")
def map_fit(data):
    return probmix.fit(probmix.GaussianMixture(3), data[0], seed=0)


@pytest.fixture(scope="module")
def cavi_fit(data):
    return probmix.fit(probmix.GaussianMixture(3), data[0], engine="svi", method="cavi", seed=0,
                       num_draws=200)


@pytest.fixture(scope="module")
def gibbs_fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # r_hat of a deliberately short run
        return probmix.fit(probmix.GaussianMixture(3), data[0], engine="mcmc", method="gibbs",
                           seed=0, num_samples=100, num_warmup=50, num_chains=2, progress=False)


def ellipses(ax, gid=None):
    return [p for p in ax.patches if isinstance(p, Ellipse) and (gid is None or p.get_gid() == gid)]


def saves(fig, tmp_path, name="fig.png"):
    assert isinstance(fig, Figure)
    out = tmp_path / name
    fig.savefig(out)
    assert out.stat().st_size > 0


def test_clusters_draws_two_ellipses_per_component(map_fit, data, tmp_path):
    fig = plot.clusters(map_fit, data[0])
    (ax,) = fig.axes
    assert len(ellipses(ax)) == 2 * map_fit.n_components
    assert len(ellipses(ax, "sigma1")) == map_fit.n_components
    # the 2σ ellipse is twice the 1σ one and centred on the mean
    one, two = ellipses(ax, "sigma1")[0], ellipses(ax, "sigma2")[0]
    assert two.width == pytest.approx(2 * one.width)
    np.testing.assert_allclose(one.center, map_fit.means[0])
    # 1σ ellipse area = π √det Σ
    area = np.pi * one.width * one.height / 4
    assert area == pytest.approx(np.pi * np.sqrt(np.linalg.det(map_fit.covariances[0])))
    assert "weight" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    saves(fig, tmp_path)


def test_clusters_projects_on_principal_axes(data, tmp_path):
    x = np.column_stack([data[0], 0.1 * data[0][:, 0] + np.random.default_rng(0).normal(size=300)])
    fit = probmix.fit(probmix.GaussianMixture(3), x, seed=0)
    fig = plot.clusters(fit, x)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("PC1 (") and "% var" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("PC2 (")
    assert len(ellipses(ax)) == 6
    saves(fig, tmp_path)


def test_clusters_one_feature_histogram(data, tmp_path):
    x = data[0][:, :1]
    fit = probmix.fit(probmix.GaussianMixture(2), x, seed=0)
    fig = plot.clusters(fit, x)
    ax = fig.axes[0]
    assert not ellipses(ax)
    density = [line for line in ax.get_lines() if line.get_label() == "mixture density"]
    (line,) = density
    grid, y = line.get_data()
    assert np.trapezoid(y, grid) == pytest.approx(1.0, abs=0.05)
    saves(fig, tmp_path)


def test_clusters_on_given_axes_and_labels(map_fit, data):
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.clusters(map_fit, data[0], labels=data[1], ax=ax, title="t") is fig
    assert ax.get_title() == "t"


def test_uncertainty_spaghetti(cavi_fit, data, tmp_path):
    fig = plot.uncertainty(cavi_fit, data[0], n_draws=20, seed=1)
    ax = fig.axes[0]
    assert len(ellipses(ax, "draw")) == 20 * cavi_fit.n_components
    saves(fig, tmp_path)
    # same seed, same draws
    again = plot.uncertainty(cavi_fit, data[0], n_draws=20, seed=1).axes[0]
    assert [e.center for e in ellipses(again)] == [e.center for e in ellipses(ax)]


def test_uncertainty_needs_draws(map_fit, data):
    with pytest.raises(ValueError, match="engine='mcmc'"):
        plot.uncertainty(map_fit, data[0])


def test_compare_one_panel_per_fit(map_fit, cavi_fit, gibbs_fit, data, tmp_path):
    fits = {"EM": map_fit, "CAVI": cavi_fit, "Gibbs": gibbs_fit}
    fig = plot.compare(fits, data[0], n_draws=10)
    assert len(fig.axes) == 3
    for ax, (name, fit) in zip(fig.axes, fits.items()):
        assert ax.get_title().startswith(f"{name} ({fit.engine}")
        assert len(ellipses(ax, "sigma1")) + len(ellipses(ax, "sigma2")) == 6
        assert len(ellipses(ax, "draw")) == (30 if fit.draws else 0)
    saves(fig, tmp_path)


def test_guessed_vs_true_colours_match(map_fit, data, tmp_path):
    x, source = data
    fig = plot.guessed_vs_true(map_fit, x, source)
    left, right = fig.axes[:2]
    assert left.get_title().startswith("guessed source")
    assert right.get_title() == "true association"
    guessed = left.collections[0].get_facecolors()[:, :3]
    true = right.collections[0].get_facecolors()[:, :3]
    assert guessed.shape == true.shape == (len(x), 3)
    assert np.mean(np.all(np.isclose(guessed, true), axis=1)) > 0.95
    saves(fig, tmp_path)


def test_loss_curve(data, map_fit, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        svi = probmix.fit(probmix.GaussianMixture(3), data[0], engine="svi", guide="normal",
                          steps=100, progress=False)  # stochastic steps (not the Laplace guide)
    fig = plot.loss_curve(svi)
    ax = fig.axes[0]
    raw, running = ax.get_lines()
    assert len(raw.get_xdata()) == 100
    np.testing.assert_allclose(raw.get_ydata(), svi.losses)
    assert len(running.get_xdata()) == 100 - 5 + 1
    assert "ELBO" in ax.get_ylabel()
    saves(fig, tmp_path)
    with pytest.raises(ValueError, match="no losses"):
        plot.loss_curve(map_fit)


def test_criterion_marks_best(data, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EM may stop at max_iter for K = 4
        sel = probmix.select(data[0], range(1, 5), criterion="bic", covariance="full")
    fig = plot.criterion(sel)
    ax = fig.axes[0]
    (best,) = [line for line in ax.get_lines() if line.get_label().startswith("best K")]
    assert best.get_xdata()[0] == sel.best
    assert best.get_ydata()[0] == pytest.approx(sel.table["bic"].loc[sel.best])
    assert "lower is better" in ax.get_ylabel()
    saves(fig, tmp_path)


def test_criterion_by_family_draws_one_line_per_family(data, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = probmix.select(data[0], range(1, 4), covariance=["EII", "VVV", "EEE"],
                             criterion="icl")
    fig = plot.criterion(sel)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert {"EII", "VVV", "EEE"} <= set(lines)
    np.testing.assert_allclose(lines["VVV"].get_ydata(),
                               sel.table[sel.table["covariance"] == "VVV"]["icl"])
    (best,) = [line for label, line in lines.items() if label.startswith("best")]
    assert best.get_xdata()[0] == sel.best and sel.best_covariance in best.get_label()
    assert "lower is better" in ax.get_title() and "ICL" in ax.get_title()
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # outside the axes
    saves(fig, tmp_path)


def test_criterion_error_bars():
    import pandas as pd

    table = pd.DataFrame({"n_components": [1, 2, 3], "elpd_loo": [-10.0, -5.0, -6.0],
                          "se": [1.0, 0.5, 0.7]}).set_index("n_components")
    sel = probmix.Selection(criterion="loo", table=table, best=2, fits={})
    ax = plot.criterion(sel).axes[0]
    assert ax.containers and ax.containers[0].has_yerr
    assert "higher is better" in ax.get_ylabel()


@pytest.mark.parametrize("function", [plot.trace, plot.rank])
def test_arviz_plots(function, gibbs_fit, tmp_path):
    fig = function(gibbs_fit, var_names=("means",))
    assert isinstance(fig, Figure) and fig.axes
    saves(fig, tmp_path)


def test_trace_needs_draws(map_fit):
    with pytest.raises(ValueError, match="no posterior draws|has none"):
        plot.trace(map_fit)


@pytest.fixture(scope="module")
def meanshift(data):
    return probmix.MeanShift(bin_seeding=True, keep_path=True).fit(data[0])


def test_meanshift_paths(meanshift, data, tmp_path):
    fig = plot.meanshift_paths(meanshift, data[0])
    ax = fig.axes[0]
    n_seeds = meanshift.path_.shape[1]
    paths = [line for line in ax.get_lines() if len(line.get_xdata()) == meanshift.path_.shape[0]]
    assert len(paths) == n_seeds
    np.testing.assert_allclose(ax.collections[-1].get_offsets(), meanshift.cluster_centers_)
    saves(fig, tmp_path)
    with pytest.raises(ValueError, match="keep_path=True"):
        plot.meanshift_paths(probmix.MeanShift(bin_seeding=True).fit(data[0]), data[0])


def test_meanshift_animation_writes_gif(meanshift, data, tmp_path):
    out = plot.meanshift_animation(meanshift, data[0], tmp_path / "ms.gif", max_frames=8)
    assert out.read_bytes()[:4] == b"GIF8"
