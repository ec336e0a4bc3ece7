"""The blocked Gibbs sampler (engine="mcmc", method="gibbs"): exact oracles, recovery,
relabelling, determinism, the Dirichlet-process weights, errors, and (slow) calibration."""

import warnings

import numpy as np
import pytest
import torch

import probmix
from probmix.io.datasets import THREE_CLUSTERS, three_clusters
from probmix.results.diagnostics import ConvergenceDiagnosticWarning
from probmix.infer.mcmc.gibbs import fit_gibbs, log_standard_gamma, wishart_precision_cholesky

arviz_stats = pytest.importorskip("arviz_stats")
FAMILIES = ["full", "diag", "spherical", "tied"]


@pytest.fixture(scope="module")
def blobs():
    return three_clusters(300, seed=0)


@pytest.fixture(scope="module")
def blobs_fit(blobs):
    x, _ = blobs
    return fit_gibbs(probmix.GaussianMixture(3), x, num_samples=500, num_warmup=200, num_chains=4,
                     keep_assignments=True, seed=0, progress=False)


def _rhat(fit, name="means"):
    """Multi-chain r_hat of one site (arviz_stats returns the posterior node or a whole tree)."""
    tree = arviz_stats.rhat(fit.to_arviz(log_likelihood=False), var_names=[name])
    node = tree["posterior"] if "posterior" in getattr(tree, "children", {}) else tree
    return np.asarray(node[name].values)


def _mc_check(samples, expected, label):
    """Mean of i.i.d. ``samples`` (M, ...) within 4 Monte Carlo standard errors of ``expected``.

    4 MCSE: a two-sided miss has probability 6e-5 per coordinate, so with the ~60 coordinates
    checked below a false failure happens about once in 250 seeds (the seed is fixed).
    """
    samples = np.asarray(samples, dtype=np.float64)
    mcse = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    err = np.abs(samples.mean(0) - expected)
    assert np.all(err < 4 * mcse), f"{label}: |error| / MCSE = {err / mcse}"


# --- random variates ---------------------------------------------------------------------------

def test_gamma_variates_have_the_right_moments_and_leave_the_global_rng_alone():
    gen = torch.Generator().manual_seed(0)
    shapes = torch.tensor([0.05, 0.5, 1.0, 3.7, 250.0], dtype=torch.float64)
    state = torch.get_rng_state()
    g = torch.exp(log_standard_gamma(shapes.expand(20000, 5), gen)).numpy()  # (M, 5)
    assert torch.equal(state, torch.get_rng_state())
    assert np.all(g >= 0) and np.all(np.isfinite(g))
    _mc_check(g, shapes.numpy(), "E[G] = a")
    _mc_check((g - shapes.numpy()) ** 2, shapes.numpy(), "Var[G] = a")


def test_bartlett_wishart_has_the_right_mean_and_an_upper_factor():
    gen = torch.Generator().manual_seed(1)
    psi = torch.tensor([[2.0, 0.6, 0.1], [0.6, 1.0, -0.2], [0.1, -0.2, 0.5]], dtype=torch.float64)
    dof = torch.full((20000,), 3.5, dtype=torch.float64)
    u = wishart_precision_cholesky(dof, psi.expand(20000, 3, 3), gen)  # (M, 3, 3)
    assert torch.equal(u, torch.triu(u)) and bool((torch.diagonal(u, dim1=-2, dim2=-1) > 0).all())
    lam = (u @ u.mT).numpy()
    _mc_check(lam, 3.5 * np.linalg.inv(psi.numpy()), "E[Λ] = ν Ψ⁻¹")
    # the variance too: Var(Λ_ij) = ν (V_ij² + V_ii V_jj) with V = Ψ⁻¹
    v = np.linalg.inv(psi.numpy())
    var = 3.5 * (v**2 + np.outer(np.diag(v), np.diag(v)))
    _mc_check((lam - 3.5 * v) ** 2, var, "Var[Λ]")


# --- 1. K = 1: the exact Normal-Wishart / Normal-Gamma posterior ---------------------------------

def _exact_posterior(x, covariance, prior):
    """Posterior means of μ, of the native precision and of (μ - E μ)² for one component."""
    n, d = x.shape
    m0, beta0, nu0 = np.asarray(prior.mean_loc), prior.mean_precision, prior.dof
    psi0 = np.asarray(prior.scale)
    xbar = x.mean(0)
    scatter = (x - xbar).T @ (x - xbar)
    beta, nu = beta0 + n, nu0 + n
    m = (beta0 * m0 + n * xbar) / beta
    psi = psi0 + scatter + beta0 * n / beta * np.outer(xbar - m0, xbar - m0)
    if covariance in ("full", "tied"):  # Λ ~ Wishart(ν, Ψ⁻¹), μ ~ t with Cov = Ψ / (β (ν - D - 1))
        prec = nu * np.linalg.inv(psi)
        var_mu = np.diag(psi) / (beta * (nu - d - 1))
        prec = prec[None] if covariance == "full" else prec
    elif covariance == "diag":  # λ_d ~ Gamma(a, b_d)
        a, b = 0.5 * nu, 0.5 * np.diag(psi)
        prec, var_mu = (a / b)[None], b / (beta * (a - 1))
    else:  # λ ~ Gamma(D ν / 2, tr Ψ / 2)
        a, b = 0.5 * d * nu, 0.5 * np.trace(psi)
        prec, var_mu = np.array([a / b]), b / (beta * (a - 1))
    return m, prec, var_mu


# K = 1: the weights are constant, so their r_hat is 0 / 0
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("covariance", FAMILIES)
def test_one_component_matches_the_exact_conjugate_posterior(covariance, rng):
    x = rng.multivariate_normal([2.0, 0.5], [[1.0, 0.6], [0.6, 2.0]], size=30)
    prior = probmix.Prior(mean_loc=[1.0, -1.0], mean_precision=0.5, dof=3.5,
                          scale=[[2.0, 0.3], [0.3, 1.0]])
    model = probmix.GaussianMixture(1, covariance=covariance, prior=prior)
    fit = fit_gibbs(model, x, num_samples=1000, num_warmup=1, num_chains=4, seed=3, progress=False)
    m, prec, var_mu = _exact_posterior(x, covariance, prior)
    # with K = 1, z is fixed, so successive parameter draws are independent: ESS = draws
    mu = fit.draws["means"][..., 0, :].reshape(-1, 2)  # (M, D)
    _mc_check(mu, m, "E[μ]")
    _mc_check((mu - m) ** 2, var_mu, "Var[μ]")
    lam = fit.draws["precisions"].reshape(-1, *fit.draws["precisions"].shape[2:])
    _mc_check(lam, prec, "E[precision]")
    np.testing.assert_array_equal(fit.draws["weights"], 1.0)


# --- 2. recovery on the walkthrough data -------------------------------------------------------

def test_intervals_cover_the_true_means_and_chains_agree(blobs_fit):
    fit = blobs_fit
    assert fit.engine == "mcmc" and fit.options["method"] == "gibbs"
    means = fit.draws["means"].reshape(-1, 3, 2)  # (M, K, D), relabelled to the MAP order
    truth = THREE_CLUSTERS["means"]
    order = [int(np.argmin(np.linalg.norm(fit.means - t, axis=1))) for t in truth]
    assert sorted(order) == [0, 1, 2]
    lo, hi = np.percentile(means[:, order], [2.5, 97.5], axis=0)  # (K, D) each
    assert np.all((lo <= truth) & (truth <= hi)), (lo, hi)
    assert _rhat(fit).max() < 1.01
    np.testing.assert_allclose(fit.weights.sum(), 1.0)
    assert fit.n_iter == 200 + 500


def test_assignment_draws_are_kept_relabelled(blobs, blobs_fit):
    x, source = blobs
    z = blobs_fit.assignment_draws
    assert z.shape == (4, 500, len(x)) and z.dtype == np.int16
    # z_n agrees with the parameters' component order: the modal draw is fit.predict's label
    modal = np.apply_along_axis(np.bincount, 0, z.reshape(-1, len(x)), minlength=3).argmax(0)
    assert np.mean(modal == blobs_fit.predict(x)) > 0.99


# short runs: r_hat is not the point here
@pytest.mark.filterwarnings("ignore::probmix.results.diagnostics.ConvergenceDiagnosticWarning")
def test_dispatch_float32_and_prior_start(blobs):
    x, _ = blobs
    model = probmix.GaussianMixture(3, covariance="diag")
    kw = dict(num_samples=150, num_warmup=100, num_chains=2, progress=False)
    ref = probmix.fit(model, x, engine="mcmc", method="gibbs", **kw)
    f32 = probmix.fit(model, x, engine="mcmc", method="gibbs", dtype=torch.float32, **kw)
    prior_start = probmix.fit(model, x, engine="mcmc", method="gibbs", init="prior", **kw)
    assert f32.dtype == "float32" and all(np.isfinite(v).all() for v in f32.draws.values())
    for other in (f32, prior_start):  # same posterior: within a few posterior sds
        sd = ref.draws["means"].std(axis=(0, 1))
        assert np.all(np.abs(other.means - ref.means) < 5 * sd)
    assert prior_start.options["init"] == "prior"


# --- 3. relabelling ---------------------------------------------------------------------------

def test_chains_started_in_permuted_modes_need_relabelling(blobs):
    x, _ = blobs
    model = probmix.GaussianMixture(3)
    p = probmix.fit(model, x, seed=0).params
    perms = np.array([[0, 1, 2], [1, 2, 0], [2, 0, 1]])  # one component order per chain
    init = {key: p[key][perms] for key in ("weights", "means", "covariances")}  # (C, K, ...)
    kw = dict(num_samples=400, num_warmup=50, num_chains=3, init=init, seed=1, progress=False)
    with pytest.warns(ConvergenceDiagnosticWarning, match="r_hat"):
        raw = fit_gibbs(model, x, relabel=False, **kw)
    assert _rhat(raw).max() > 1.1 and not raw.options["relabelled"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceDiagnosticWarning)
        fixed = fit_gibbs(model, x, **kw)
    assert _rhat(fixed).max() < 1.01 and fixed.options["n_relabelled"] > 0
    assert fixed.options["init"] == "given"


# --- 4. determinism and batched chains -----------------------------------------------------------

# short runs: r_hat is not the point here
@pytest.mark.filterwarnings("ignore::probmix.results.diagnostics.ConvergenceDiagnosticWarning")
def test_same_seed_same_draws_and_chains_are_distinct(blobs):
    x, _ = blobs
    model = probmix.GaussianMixture(3, covariance="spherical")
    kw = dict(num_samples=30, num_warmup=10, num_chains=4, thin=2, progress=False)
    a, b = fit_gibbs(model, x, seed=7, **kw), fit_gibbs(model, x, seed=7, **kw)
    c = fit_gibbs(model, x, seed=8, **kw)
    for name in a.draws:
        np.testing.assert_array_equal(a.draws[name], b.draws[name])
    assert not np.array_equal(a.draws["means"], c.draws["means"])
    means = a.draws["means"]  # (C, S, K, D)
    assert means.shape == (4, 30, 3, 2) and a.n_iter == 10 + 30 * 2
    for i in range(4):  # every chain moves on its own yet samples the same posterior
        for j in range(i):
            assert not np.allclose(means[i], means[j])
    sd = means.std(axis=(0, 1))
    assert np.all(np.abs(means.mean(1) - means.mean(axis=(0, 1))) < 4 * sd)


# --- 5. Dirichlet-process weights ----------------------------------------------------------------

@pytest.fixture(scope="module")
def dp_fit(blobs):
    x, _ = blobs
    model = probmix.GaussianMixture(6, weights_prior="dirichlet_process",
                                    prior=probmix.Prior(weight_concentration=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceDiagnosticWarning)
        return fit_gibbs(model, x, num_samples=300, num_warmup=300, num_chains=2, seed=0,
                         progress=False)


def test_dirichlet_process_switches_unneeded_components_off(dp_fit):
    # label-invariant: the three smallest weights of every draw
    w = np.sort(dp_fit.draws["weights"], axis=-1)  # (C, S, K)
    assert np.all(w[..., :3].mean(axis=(0, 1)) < 0.02)
    np.testing.assert_allclose(w[..., 3:].mean(axis=(0, 1)), 1 / 3, atol=0.03)


def test_dirichlet_process_relabelled_weights_are_sparse(dp_fit):
    assert np.sum(dp_fit.weights < 0.02) >= 3


# --- 6. errors and progress --------------------------------------------------------------------

def test_errors_name_the_argument(blobs):
    x, _ = blobs
    with pytest.raises(ValueError, match="flat"):
        fit_gibbs(probmix.GaussianMixture(3, prior="flat"), x, progress=False)
    model = probmix.GaussianMixture(3)
    with pytest.raises(ValueError, match="num_samples"):
        fit_gibbs(model, x, num_samples=0)
    with pytest.raises(TypeError, match="chains"):
        fit_gibbs(model, x, num_chains=2.0)
    with pytest.raises(ValueError, match="chains"):
        fit_gibbs(model, x, num_chains=0)
    with pytest.raises(ValueError, match="init"):
        fit_gibbs(model, x, init="kmeans")
    p = probmix.fit(model, x).params
    two = {key: np.stack([p[key]] * 2) for key in ("weights", "means", "covariances")}
    with pytest.raises(ValueError, match="per chain"):
        fit_gibbs(model, x, init=two, num_chains=3)
    with pytest.raises(TypeError, match="GaussianMixture"):
        fit_gibbs(lambda x: None, x)


@pytest.mark.filterwarnings("ignore::probmix.results.diagnostics.ConvergenceDiagnosticWarning")
@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
def test_progress_bar_shows_the_phase(blobs, capsys):
    x, _ = blobs
    fit_gibbs(probmix.GaussianMixture(2), x, num_samples=3, num_warmup=2, num_chains=2,
              progress=True)
    err = capsys.readouterr().err
    assert "Gibbs (warmup)" in err and "Gibbs (sampling)" in err


# --- 7. simulation-based calibration (slow) ------------------------------------------------------

@pytest.mark.slow
def test_simulation_based_calibration():
    """Talts et al. (2018): the rank of the truth among posterior draws is uniform.

    100 data sets of 50 points from the prior of a 2-component full model; for each, 99
    thinned draws (one chain, thin 10) and the ranks of three label-invariant statistics of
    the truth; chi-square test of uniformity over 10 bins, each p > 0.01.
    """
    from scipy import stats

    prior = probmix.Prior(mean_loc=[0.0, 0.0], scale=np.eye(2), dof=4.0, mean_precision=0.1)
    model = probmix.GaussianMixture(2, covariance="full", prior=prior)
    rng = np.random.default_rng(2024)

    def statistics(weights, means, precisions):
        return np.stack([means[..., 0].sum(-1), weights.max(-1),
                         np.linalg.slogdet(precisions)[1].sum(-1)], -1)

    ranks = []
    for s in range(100):
        weights = rng.dirichlet(np.ones(2))
        prec = stats.wishart(df=4.0, scale=np.eye(2)).rvs(2, random_state=rng)  # (K, D, D)
        cov = np.linalg.inv(prec)
        means = np.stack([rng.multivariate_normal(np.zeros(2), c / 0.1) for c in cov])
        x, _ = model.sample(50, seed=s, params={"weights": weights, "means": means,
                                                "covariances": cov})
        fit = fit_gibbs(model, x, num_samples=99, num_warmup=200, thin=10, num_chains=1, seed=s,
                        progress=False)
        draws = statistics(fit.draws["weights"][0], fit.draws["means"][0],
                           fit.draws["precisions"][0])  # (99, 3)
        ranks.append((draws < statistics(weights, means, prec)).sum(0))
    ranks = np.array(ranks)  # (100, 3), each in 0..99
    p_values = [stats.chisquare(np.bincount(r // 10, minlength=10)).pvalue for r in ranks.T]
    print("SBC p-values (sum of first mean coordinates, max weight, sum log|Λ|):",
          [round(float(p), 3) for p in p_values])
    assert min(p_values) > 0.01, p_values
