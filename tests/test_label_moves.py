"""Chain starts and label moves of the samplers: the stick-breaking label exchanges keep the
prior's distribution over label orders, dispersed starts let r_hat see a stuck chain, and the
Dirichlet-process posterior no longer depends on the label order of the start (slow)."""

import itertools
import warnings

import numpy as np
import pytest
import torch

import probmix
from probmix.infer.map.em import fit_em_start
from probmix.infer.mcmc.chain_starts import dispersed_starts
from probmix.infer.mcmc.gibbs import fit_gibbs
from probmix.infer.mcmc.label_moves import log_stick_prior, permute_labels
from probmix.results.diagnostics import ConvergenceDiagnosticWarning


def test_label_exchanges_reach_the_stick_breaking_prior_over_orders():
    """Counts (7, 2, 0, 4) in every order: after a few sweeps the orders are visited with the
    probabilities p(z) ∝ Π B(1 + n_j, γ + m_j), the exact target of the moves."""
    gamma = torch.tensor([0.5, 0.8, 1.3], dtype=torch.float64)
    counts = torch.tensor([7.0, 2.0, 0.0, 4.0], dtype=torch.float64)
    chains = 40000
    stats = torch.stack([counts, torch.zeros(4, dtype=torch.float64)], -1)  # (K, 2)
    stats = stats.expand(chains, 4, 2).clone()
    gen = torch.Generator().manual_seed(0)
    for _ in range(12):
        stats, _ = permute_labels(stats, gamma, gen)
    orders = [torch.tensor(p) for p in itertools.permutations(range(4))]
    logp = torch.stack([log_stick_prior(counts[o], gamma) for o in orders])
    expected = torch.softmax(logp, 0).numpy()
    seen = stats[..., 0]  # (C, K) counts in their new order
    freq = np.array([(seen == counts[o]).all(-1).double().mean().item() for o in orders])
    se = np.sqrt(expected * (1 - expected) / chains)
    assert np.all(np.abs(freq - expected) < 5 * se + 1e-12), (freq, expected)


def test_label_exchanges_permute_the_statistics_with_the_returned_permutation():
    gen = torch.Generator().manual_seed(1)
    stats = torch.rand(6, 5, 3, generator=gen, dtype=torch.float64)
    stats[..., 0] = torch.randint(0, 9, (6, 5), generator=gen).double()
    out, perm = permute_labels(stats.clone(), torch.full((4,), 0.7, dtype=torch.float64), gen)
    np.testing.assert_array_equal(out.numpy(), torch.gather(
        stats, 1, perm[..., None].expand_as(stats)).numpy())
    assert torch.equal(perm.sort(-1).values, torch.arange(5).expand(6, 5))  # permutations


def test_dispersed_starts_differ_and_are_valid(rng):
    x = torch.as_tensor(rng.normal(size=(200, 2)))
    gen = torch.Generator().manual_seed(0)
    s = dispersed_starts(x, 3, 4, generator=gen)
    assert s["means"].shape == (4, 3, 2) and s["covariances"].shape == (4, 3, 2, 2)
    assert torch.allclose(s["weights"].sum(-1), torch.ones(4, dtype=x.dtype))
    assert len({tuple(m.flatten().tolist()) for m in s["means"]}) == 4  # different starts
    assert bool((torch.linalg.eigvalsh(s["covariances"]) > 0).all())


def test_dispersed_gibbs_chains_let_r_hat_see_a_stuck_chain():
    """Four far-apart clusters, K = 3: every solution merges two clusters, and Gibbs cannot
    move between merges. Chains all at the MAP agree (r_hat near 1); dispersed chains settle
    on different merges and r_hat says so."""
    gen = np.random.default_rng(3)
    corners = np.array([[0.0, 0.0], [30.0, 0.0], [0.0, 32.0], [31.0, 31.0]])
    x = np.concatenate([c + gen.normal(size=(60, 2)) for c in corners])
    kw = dict(num_samples=100, num_warmup=50, num_chains=4, seed=0, progress=False)
    model = probmix.GaussianMixture(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceDiagnosticWarning)
        fit_gibbs(model, x, init="map", **kw)  # blind: no warning
    with pytest.warns(ConvergenceDiagnosticWarning, match="r_hat"):
        fit_gibbs(model, x, **kw)  # the default, init="dispersed"


def _occupied(fit):
    z = fit.assignment_draws.astype(np.int64)
    return (np.stack([(z == j).sum(-1) for j in range(fit.n_components)], -1) > 0).sum(-1)


@pytest.mark.slow
def test_dirichlet_process_gibbs_does_not_depend_on_the_start_label_order():
    """The issue's probe (K = 5, γ = 0.5, three clusters): P(3 occupied) from the default
    start and from an occupied-first start agree (before the label moves: 0.37 vs 0.80)."""
    x, _ = probmix.three_clusters(100, seed=0)
    model = probmix.GaussianMixture(5, weights_prior="dirichlet_process",
                                    prior=probmix.Prior(weight_concentration=0.5))
    kw = dict(num_samples=1000, num_warmup=500, num_chains=4, keep_assignments=True, seed=0,
              progress=False)
    p = fit_em_start(model, x, seed=0).params
    order = np.argsort(-np.asarray(p["weights"]))
    first = {key: np.asarray(p[key])[order] for key in ("weights", "means", "covariances")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceDiagnosticWarning)
        a = (_occupied(fit_gibbs(model, x, **kw)) == 3).mean()
        b = (_occupied(fit_gibbs(model, x, init=first, **kw)) == 3).mean()
    assert abs(a - b) < 0.08, (a, b)


@pytest.mark.slow
def test_dirichlet_process_gibbs_simulation_based_calibration():
    """Talts et al. (2018) for the stick-breaking prior with the label moves on: 100 data sets
    of 50 points from the prior of a 3-component truncated DP (γ = 1); ranks of the truth's
    largest weight, Σ_k μ_k1 and Σ_k log|Λ_k| (label-invariant) among 99 thinned draws are
    uniform (chi-square over 10 bins, each p > 0.01). A wrong acceptance ratio in the moves
    would bias the sticks and with them the largest weight."""
    from scipy import stats

    prior = probmix.Prior(mean_loc=[0.0, 0.0], scale=np.eye(2), dof=4.0, mean_precision=0.1,
                          weight_concentration=1.0)
    model = probmix.GaussianMixture(3, covariance="full", prior=prior,
                                    weights_prior="dirichlet_process")
    rng = np.random.default_rng(7)

    def statistics(weights, means, precisions):
        return np.stack([weights.max(-1), means[..., 0].sum(-1),
                         np.linalg.slogdet(precisions)[1].sum(-1)], -1)

    ranks = []
    for s in range(100):
        v = rng.beta(1.0, 1.0, size=2)
        weights = np.array([v[0], (1 - v[0]) * v[1], (1 - v[0]) * (1 - v[1])])
        prec = stats.wishart(df=4.0, scale=np.eye(2)).rvs(3, random_state=rng)  # (K, D, D)
        cov = np.linalg.inv(prec)
        means = np.stack([rng.multivariate_normal(np.zeros(2), c / 0.1) for c in cov])
        x, _ = model.sample(50, seed=s, params={"weights": weights, "means": means,
                                                "covariances": cov})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_gibbs(model, x, num_samples=99, num_warmup=200, thin=10, num_chains=1,
                            seed=s, relabel=False, progress=False)
        draws = statistics(fit.draws["weights"][0], fit.draws["means"][0],
                           fit.draws["precisions"][0])  # (99, 3)
        ranks.append((draws < statistics(weights, means, prec)).sum(0))
    ranks = np.array(ranks)  # (100, 3), each in 0..99
    p_values = [stats.chisquare(np.bincount(r // 10, minlength=10)).pvalue for r in ranks.T]
    print("DP SBC p-values (max weight, sum of first mean coordinates, sum log|Λ|):",
          [round(float(p), 3) for p in p_values])
    assert min(p_values) > 0.01, p_values
