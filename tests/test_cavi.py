"""The closed-form CAVI engine: oracles (scikit-learn, the exact conjugate posterior, the
evidence), optimality of each coordinate update, the ELBO's monotonicity, and its draws."""

import warnings

import numpy as np
import pytest
import torch
from pyro import poutine
from scipy.special import gammaln

import probmix
from probmix.io.datasets import THREE_CLUSTERS, three_clusters
from probmix.infer.map import em_steps
from probmix.infer.vi import cavi
from probmix.infer.vi.cavi import fit_cavi
from probmix.model import mixture_posterior
from probmix.model import weights as weights_posterior

FAMILIES = ["full", "diag", "spherical", "tied"]
sklearn_mixture = pytest.importorskip("sklearn.mixture")

# A prior far from the default, so that every prior term matters.
ALPHA, M0, BETA0, NU0 = 0.8, np.array([0.5, 0.2]), 0.7, 3.5
PSI0 = np.array([[2.0, 0.3], [0.3, 1.5]])
PRIOR = probmix.Prior(weight_concentration=ALPHA, mean_loc=M0, mean_precision=BETA0, dof=NU0,
                      scale=PSI0)


@pytest.fixture(scope="module")
def blobs():
    x, source = three_clusters(n_per_cluster=200, seed=0)
    return x, source


@pytest.fixture(scope="module")
def resp0(blobs):
    """Random soft initial responsibilities (N, 3): a long path to the optimum."""
    return np.random.default_rng(0).dirichlet(np.ones(3), size=len(blobs[0]))


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # probmix's and scikit-learn's ConvergenceWarning
        return fn(*a, **kw)


class _GivenStart(sklearn_mixture.BayesianGaussianMixture):
    """scikit-learn's variational mixture started from given responsibilities ``resp_init``."""

    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self.resp_init)


def _sklearn(covariance, resp, **kw):
    d = PSI0.shape[0]
    psi = {"full": PSI0, "tied": PSI0, "diag": np.diag(PSI0), "spherical": np.trace(PSI0) / d}
    sk = _GivenStart(n_components=resp.shape[1], covariance_type=covariance,
                     weight_concentration_prior_type="dirichlet_distribution",
                     weight_concentration_prior=ALPHA, mean_prior=M0, mean_precision_prior=BETA0,
                     degrees_of_freedom_prior=NU0, covariance_prior=psi[covariance], reg_covar=0.0,
                     n_init=1, **kw)
    sk.resp_init = resp
    return sk


def _elbo_constant(k, n, d):
    """Full ELBO minus scikit-learn's lower bound (full covariance, Dirichlet weights)."""
    wishart = (NU0 / 2 * np.linalg.slogdet(PSI0)[1] - NU0 * d / 2 * np.log(2)
               - sum(gammaln((NU0 - i) / 2) for i in range(d)) + d / 2 * np.log(BETA0))
    return gammaln(k * ALPHA) - k * gammaln(ALPHA) + k * wishart - n * d / 2 * np.log(2 * np.pi)


# --- 1. scikit-learn oracle ---------------------------------------------------------------------

@pytest.mark.parametrize("max_iter, tol", [(40, 0.0), (2000, 1e-11)])
def test_full_equals_sklearn_from_the_same_responsibilities(max_iter, tol, blobs, resp0):
    """Same path, iteration by iteration: parameters to 1e-9, the ELBO to sklearn's + a constant."""
    x, _ = blobs
    n, d = x.shape
    sk = _quiet(_sklearn("full", resp0, max_iter=max_iter, tol=tol * n).fit, x)
    model = probmix.GaussianMixture(3, covariance="full", prior=PRIOR)
    fit = _quiet(fit_cavi, model, x, init=resp0, max_iter=max_iter, tol=tol)
    q = fit.options["variational"]
    assert fit.n_iter == sk.n_iter_ and fit.converged == sk.converged_
    np.testing.assert_allclose(fit.weights, sk.weights_, atol=1e-9)
    np.testing.assert_allclose(q["means"], sk.means_, atol=1e-9)
    np.testing.assert_allclose(q["mean_precision"], sk.mean_precision_, rtol=1e-10)
    np.testing.assert_allclose(q["dof"], sk.degrees_of_freedom_, rtol=1e-10)
    np.testing.assert_allclose(q["inverse_scale"] / q["dof"][:, None, None], sk.covariances_,
                               atol=1e-9)
    np.testing.assert_allclose(q["weight_concentration"], sk.weight_concentration_, rtol=1e-10)
    elbo = -fit.losses
    np.testing.assert_allclose(elbo - np.asarray(sk.lower_bounds_), _elbo_constant(3, n, d),
                               rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.lower_bounds, elbo / n)
    # and the exact posterior means that the Fit reports
    np.testing.assert_allclose(fit.means, sk.means_, atol=1e-9)
    np.testing.assert_allclose(fit.params["covariances"],
                               q["inverse_scale"] / (q["dof"] - d - 1)[:, None, None])


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_global_update_equals_sklearns_for_full_diag_spherical(covariance, blobs, resp0):
    """From the same responsibilities one global update gives sklearn's q(means, precisions);
    for diag and spherical only the E-step differs (its Wishart-like E[log|Λ|], see cavi)."""
    x, _ = blobs
    sk = _sklearn(covariance, resp0)
    sk._check_parameters(x)
    sk._initialize(x, resp0)
    model = probmix.GaussianMixture(3, covariance=covariance, prior=PRIOR)
    xt = torch.as_tensor(x)
    prior = model.resolve_prior(xt)
    data = em_steps.PreparedData(xt, model.family, shift=torch.zeros(2, dtype=xt.dtype), scale=1.0)
    rt = torch.as_tensor(resp0).T[None]
    s = em_steps.stats_from_responsibilities(data, lambda rows: rt[:, :, rows])[0]
    q = mixture_posterior.update(model.family, s, prior)
    np.testing.assert_allclose(q.means.numpy(), sk.means_, atol=1e-10)
    np.testing.assert_allclose(q.beta.numpy(), sk.mean_precision_, rtol=1e-12)
    shape, rate = q.shape.numpy(), q.inv.numpy()
    if covariance == "diag":  # sklearn: dof = 2a, covariances_ = b / a
        dof = 2 * shape[:, 0]
    else:  # full: dof = ν; spherical: dof = 2a / D
        dof = shape if covariance == "full" else 2 * shape / x.shape[1]
    np.testing.assert_allclose(dof, sk.degrees_of_freedom_, rtol=1e-12)
    normalised = rate / (shape[:, None, None] if covariance == "full" else shape)
    np.testing.assert_allclose(normalised, sk.covariances_, rtol=1e-10)


def test_tied_coincides_with_sklearn_for_one_component_only(blobs, resp0):
    """sklearn's tied update (ν₀ + N/K, Ψ₀ + ΣC/K) is not the exact one (ν₀ + N, Ψ₀ + ΣC)."""
    x, _ = blobs
    n = len(x)
    model1 = probmix.GaussianMixture(1, covariance="tied", prior=PRIOR)
    fit1 = fit_cavi(model1, x, init=np.zeros(n, dtype=int))
    sk1 = _quiet(_sklearn("tied", np.ones((n, 1)), max_iter=5, tol=0.0).fit, x)
    q1 = fit1.options["variational"]
    np.testing.assert_allclose(q1["dof"], sk1.degrees_of_freedom_, rtol=1e-12)
    np.testing.assert_allclose(q1["inverse_scale"] / q1["dof"], sk1.covariances_, rtol=1e-10)
    model3 = probmix.GaussianMixture(3, covariance="tied", prior=PRIOR)
    q3 = _quiet(fit_cavi, model3, x, init=resp0, max_iter=3, tol=0.0).options["variational"]
    assert q3["dof"] == pytest.approx(NU0 + n)  # sklearn: NU0 + n / 3


# --- 2. K = 1: the exact conjugate posterior, and the ELBO is the log evidence ------------------

@pytest.fixture(scope="module")
def data3():
    """60 points in 3-D, away from the origin."""
    rng = np.random.default_rng(1)
    a = np.array([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [-0.3, 0.4, 0.7]])
    return rng.standard_normal((60, 3)) @ a.T + np.array([3.0, -1.0, 10.0])


PRIOR3 = probmix.Prior(mean_loc=np.array([2.0, 0.0, 9.0]), mean_precision=0.4, dof=4.5,
                       scale=np.array([[1.5, 0.2, 0.0], [0.2, 2.0, -0.3], [0.0, -0.3, 0.8]]))


def _conjugate_posterior(x):
    """Normal-Wishart posterior of one Gaussian (full / tied): β, m, ν, W⁻¹ (by hand)."""
    n = len(x)
    m0, beta0, nu0, psi0 = PRIOR3.mean_loc, PRIOR3.mean_precision, PRIOR3.dof, PRIOR3.scale
    xbar = x.mean(0)
    scatter = (x - xbar).T @ (x - xbar)
    beta = beta0 + n
    m = (beta0 * m0 + n * xbar) / beta
    winv = psi0 + scatter + beta0 * n / beta * np.outer(xbar - m0, xbar - m0)
    return beta, m, nu0 + n, winv


@pytest.mark.parametrize("covariance", FAMILIES)
def test_one_component_is_the_exact_conjugate_posterior(covariance, data3):
    x = data3
    n, d = x.shape
    fit = fit_cavi(probmix.GaussianMixture(1, covariance=covariance, prior=PRIOR3), x)
    assert fit.converged and fit.n_iter == 2
    q = fit.options["variational"]
    beta, m, nu, winv = _conjugate_posterior(x)
    np.testing.assert_allclose(q["mean_precision"], [beta], rtol=1e-12)
    np.testing.assert_allclose(q["means"], m[None], rtol=1e-12)
    if covariance in ("full", "tied"):
        np.testing.assert_allclose(q["dof"], nu if covariance == "tied" else [nu], rtol=1e-12)
        expected = winv if covariance == "tied" else winv[None]
        np.testing.assert_allclose(q["inverse_scale"], expected, rtol=1e-11)
        np.testing.assert_allclose(fit.params["covariances"], expected / (nu - d - 1), rtol=1e-11)
    elif covariance == "diag":  # λ_d ~ Gamma(ν₀/2, Ψ₀_dd/2) a priori: the Wishart's diagonal
        np.testing.assert_allclose(q["shape"], np.full((1, d), nu / 2), rtol=1e-12)
        np.testing.assert_allclose(q["rate"], np.diag(winv)[None] / 2, rtol=1e-11)
    else:  # λ ~ Gamma(ν₀D/2, tr Ψ₀/2) a priori
        np.testing.assert_allclose(q["shape"], [nu * d / 2], rtol=1e-12)
        np.testing.assert_allclose(q["rate"], [np.trace(winv) / 2], rtol=1e-11)
    np.testing.assert_allclose(fit.weights, [1.0])


def _log_q(covariance, q, mean, prec):
    """log q(means, precisions) at one draw, from torch distributions."""
    D = torch.distributions
    t = {k: torch.as_tensor(v) for k, v in q.items()}
    beta = t["mean_precision"][0]
    if covariance in ("full", "tied"):
        lam = prec if covariance == "tied" else prec[0]
        lp = D.Wishart(df=t["dof"].reshape(()), precision_matrix=t["inverse_scale"].reshape(
            lam.shape)).log_prob(lam)
        normal = D.MultivariateNormal(t["means"][0], precision_matrix=beta * lam)
        return lp + normal.log_prob(mean[0])
    lam = prec[0] * torch.ones_like(mean[0])  # (D,)
    lp = D.Gamma(t["shape"][0], t["rate"][0]).log_prob(prec[0]).sum()
    return lp + D.Normal(t["means"][0], torch.rsqrt(beta * lam)).log_prob(mean[0]).sum()


@pytest.mark.parametrize("covariance", FAMILIES)
def test_one_component_elbo_is_the_log_evidence_of_the_pyro_program(covariance, data3):
    """With K = 1, q is the posterior, so ELBO = log p(x) = log p(x, θ) - log q(θ) for every θ:
    every constant of the bound checked against the density of ``model.program``."""
    x = torch.as_tensor(data3)
    model = probmix.GaussianMixture(1, covariance=covariance, prior=PRIOR3)
    fit = fit_cavi(model, x, num_draws=2, seed=3)
    for s in range(2):
        mean = torch.as_tensor(fit.draws["means"][0, s])
        prec = torch.as_tensor(fit.draws["precisions"][0, s])
        values = {"weights": torch.ones(1, dtype=x.dtype), "means": mean, "precisions": prec,
                  "z": torch.zeros(len(x), dtype=torch.long)}
        trace = poutine.trace(poutine.condition(model.program, data=values)).get_trace(x)
        log_evidence = trace.log_prob_sum() - _log_q(covariance, fit.options["variational"],
                                                     mean, prec)
        np.testing.assert_allclose(fit.options["elbo"], float(log_evidence), rtol=1e-10)


# --- 3. each coordinate update is exact; the ELBO never decreases -------------------------------

@pytest.mark.parametrize("weights_prior", ["dirichlet", "dirichlet_process"])
@pytest.mark.parametrize("covariance", FAMILIES)
def test_global_update_is_a_stationary_point_of_the_elbo(covariance, weights_prior, blobs, resp0):
    """∂ ELBO / ∂ (every q parameter) = 0 at the closed-form update, q(z) held fixed (autograd):
    the update is the exact coordinate optimum of this ELBO, tied included."""
    x = torch.as_tensor(blobs[0])
    model = probmix.GaussianMixture(3, covariance=covariance, prior=PRIOR,
                                    weights_prior=weights_prior)
    family = model.family
    data = em_steps.PreparedData(x, family)
    prior = model.resolve_prior(x).affine(data.shift, data.scale)
    rt = torch.as_tensor(resp0).T[None]
    s = em_steps.stats_from_responsibilities(data, lambda rows: rt[:, :, rows])[0]
    q = mixture_posterior.update(family, s, prior)
    leaves = [v.detach().clone().requires_grad_(True) for v in q]
    q = mixture_posterior.MixturePosterior(*leaves)
    ex = cavi._expectations(family, q, prior.stick_breaking)
    elbo = (ex.w * s).sum() - cavi._kl_globals(family, q, ex, prior)
    grads = torch.autograd.grad(elbo, leaves)
    for name, leaf, grad in zip(mixture_posterior.MixturePosterior._fields, leaves, grads):
        scale = float(leaf.detach().abs().max())  # the gradient relative to each parameter's size
        assert float(grad.abs().max()) * scale < 1e-8 * len(x), (name, float(grad.abs().max()))


@pytest.mark.parametrize("weights_prior", ["dirichlet", "dirichlet_process"])
@pytest.mark.parametrize("covariance", FAMILIES)
def test_elbo_never_decreases(covariance, weights_prior, blobs, resp0):
    x, _ = blobs
    model = probmix.GaussianMixture(3, covariance=covariance, prior=PRIOR,
                                    weights_prior=weights_prior)
    fit = _quiet(fit_cavi, model, x, init=resp0, max_iter=80, tol=0.0, num_draws=10)
    elbo = -fit.losses
    assert len(elbo) == 80 and elbo[-1] > elbo[0]
    assert np.all(np.diff(elbo) >= -1e-12 * np.abs(elbo[1:])), np.diff(elbo).min()


# --- 4. Dirichlet process -----------------------------------------------------------------------

def test_dirichlet_process_switches_off_the_components_it_does_not_need(blobs):
    x, source = blobs
    model = probmix.GaussianMixture(8, weights_prior="dirichlet_process",
                                    prior=probmix.Prior(weight_concentration=0.1))
    fit = probmix.fit(model, x, engine="svi", method="cavi", seed=0)
    assert fit.converged and fit.engine == "svi" and fit.options["method"] == "cavi"
    weights = fit.weights
    assert (weights < 0.01).sum() >= 4
    big = np.sort(np.argsort(weights)[-3:])
    np.testing.assert_allclose(weights[big], 1 / 3, atol=0.01)
    order = [int(np.argmin(np.linalg.norm(fit.means[big] - m, axis=1)))
             for m in THREE_CLUSTERS["means"]]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(fit.means[big][order], THREE_CLUSTERS["means"], atol=0.2)
    # E[π] is the stick-breaking of E[v]; q(v_j) = Beta(1 + N_j, γ + Σ_{i>j} N_i)
    q = fit.options["variational"]
    v = q["sticks_concentration1"] / (q["sticks_concentration1"] + q["sticks_concentration0"])
    np.testing.assert_allclose(weights, probmix.model.gaussian_mixture.stick_breaking(
        torch.as_tensor(v)).numpy(), rtol=1e-12)
    counts = q["sticks_concentration1"] - 1  # N_j, j < K - 1
    np.testing.assert_allclose(q["sticks_concentration0"], 0.1 + len(x) - np.cumsum(counts),
                               rtol=1e-10)
    assert fit.draws["weights"].shape == (1, 1000, 8)
    np.testing.assert_allclose(fit.draws["weights"].sum(-1), 1.0, rtol=1e-12)


def test_expected_log_stick_weights_match_monte_carlo():
    conc = torch.tensor([[3.0, 2.0, 5.0], [4.0, 1.5, 0.5]], dtype=torch.float64)  # (2, K-1)
    exact = weights_posterior.expected_log_weights(conc, True)
    gen = torch.Generator().manual_seed(0)
    v = torch._sample_dirichlet(conc.T.expand(200_000, 3, 2).contiguous(), generator=gen)[..., 0]
    mc = torch.log(probmix.model.gaussian_mixture.stick_breaking(v)).mean(0)
    np.testing.assert_allclose(exact.numpy(), mc.numpy(), atol=0.02)


# --- 5. draws and predictions -------------------------------------------------------------------

@pytest.mark.parametrize("covariance", FAMILIES)
def test_draws_agree_with_the_exact_posterior_means(covariance, blobs):
    x, _ = blobs
    model = probmix.GaussianMixture(3, covariance=covariance)
    fit = fit_cavi(model, x, num_draws=1000, seed=1)
    k, d, s = 3, 2, 1000
    native = {"full": (k, d, d), "diag": (k, d), "spherical": (k,), "tied": (d, d)}[covariance]
    assert fit.draws["weights"].shape == (1, s, k)
    assert fit.draws["means"].shape == (1, s, k, d)
    assert fit.draws["precisions"].shape == (1, s, *native)
    assert fit.draws["covariances"].shape == (1, s, *native)
    assert fit.options["n_relabelled"] == 0  # well separated: the draws keep q's order
    for name in ("weights", "means", "covariances", "precisions"):
        draws = fit.draws[name][0]
        error = np.abs(draws.mean(0) - fit.params[name])
        assert np.all(error <= 5 * draws.std(0) / np.sqrt(s) + 1e-12), (name, error)
    proba = fit.predict_proba(x)
    assert proba.shape == (len(x), k)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(fit.predict(x), proba.argmax(1))


def test_fits_are_reproducible_under_a_seed(blobs):
    x, _ = blobs
    model = probmix.GaussianMixture(3, covariance="full")
    before = torch.random.get_rng_state()
    a = fit_cavi(model, x, seed=4, num_draws=50)
    b = fit_cavi(model, x, seed=4, num_draws=50)
    c = fit_cavi(model, x, seed=5, num_draws=50)
    assert torch.equal(before, torch.random.get_rng_state())  # torch's global RNG untouched
    for name in a.draws:
        np.testing.assert_array_equal(a.draws[name], b.draws[name])
    np.testing.assert_array_equal(a.lower_bounds, b.lower_bounds)
    assert not np.array_equal(a.draws["means"], c.draws["means"])


# --- 6. errors and warnings ---------------------------------------------------------------------

def test_flat_prior_is_refused(blobs):
    with pytest.raises(ValueError, match="proper prior.*engine='map'"):
        fit_cavi(probmix.GaussianMixture(3, prior="flat"), blobs[0])


@pytest.mark.parametrize("init, match", [
    (np.ones((10, 3)) / 3, r"\(600, 3\).*\(10, 3\)"),
    (np.ones((600, 4)) / 4, r"\(600, 4\)"),
    (np.zeros(600), "integer labels"),
    (np.full(600, 3), "labels must lie in"),
    (np.full((600, 3), 0.5), "sum to 1"),
    ("kmeans", "'kmeans'"),
])
def test_bad_init_is_refused(init, match, blobs):
    with pytest.raises(ValueError, match=match):
        fit_cavi(probmix.GaussianMixture(3), blobs[0], init=init)


def test_bad_options_are_refused(blobs):
    model = probmix.GaussianMixture(3)
    with pytest.raises(ValueError, match="max_iter"):
        fit_cavi(model, blobs[0], max_iter=0)
    with pytest.raises(TypeError, match="num_draws"):
        fit_cavi(model, blobs[0], num_draws=1.5)
    with pytest.raises(ValueError, match="tol"):
        fit_cavi(model, blobs[0], tol=-1.0)


def test_labels_init_and_convergence_warning(blobs):
    x, source = blobs
    model = probmix.GaussianMixture(3)
    with pytest.warns(probmix.ConvergenceWarning, match="max_iter=2.*Increase max_iter") as record:
        fit = probmix.fit(model, x, engine="svi", method="cavi", init=source, max_iter=2, tol=0.0,
                          num_draws=10)
    assert record[0].filename == __file__  # points at the caller of probmix.fit
    assert not fit.converged and fit.n_iter == 2 and fit.options["init"] == "labels"


def test_warm_start_continues_from_q_and_checks_the_model(blobs):
    x, _ = blobs
    model = probmix.GaussianMixture(3, prior=PRIOR)
    done = fit_cavi(model, x, tol=1e-10, num_draws=10)
    again = _quiet(fit_cavi, model, x, warm_start=done, max_iter=2, tol=0.0, num_draws=10)
    assert again.options["init"] == "warm_start"
    np.testing.assert_allclose(-again.losses, done.options["elbo"], rtol=1e-10)  # a fixed point
    with pytest.raises(ValueError, match="warm_start"):
        fit_cavi(probmix.GaussianMixture(2, prior=PRIOR), x, warm_start=done)
    # expected_log_joint is the local update: the global update from its responsibilities is
    # the first iteration of the warm start
    one = _quiet(fit_cavi, model, x, warm_start=done, max_iter=1, num_draws=10)
    resp = torch.softmax(cavi.expected_log_joint(done, x), -1)  # (N, K)
    xt = torch.as_tensor(x)
    data = em_steps.PreparedData(xt, model.family, shift=torch.zeros(2, dtype=xt.dtype), scale=1.0)
    s = em_steps.stats_from_responsibilities(data, lambda rows: resp.T[None][:, :, rows])[0]
    q = mixture_posterior.update(model.family, s, model.resolve_prior(xt))
    np.testing.assert_allclose(q.means.numpy(), one.options["variational"]["means"], rtol=1e-10)
    np.testing.assert_allclose(q.inv.numpy(), one.options["variational"]["inverse_scale"],
                               rtol=1e-10)
