"""A Gaussian mixture with the priors a Bayesian writes by hand: LKJ correlations, half-normal
scales, normal means (not conjugate, so only the generic engines fit it)."""

import numpy as np
import pyro
import pyro.distributions as dist
import torch


def program(x, *, n_components=3, eta=2.0):
    """K full-covariance Gaussians whose covariance is split into scales and correlations.

    Generative story: draw the weights; for each component draw a mean, a standard deviation
    per feature and a correlation matrix (through its Cholesky factor, LKJ); each point picks
    a component z and is drawn from MultivariateNormal(locs[z], diag(scales[z]) L[z] L[z]ᵀ
    diag(scales[z])). This is the covariance prior of Stan's and PyMC's manuals (Lewandowski,
    Kurowicka & Joe 2009), in place of the conjugate Wishart of ``probmix.GaussianMixture``.

    Priors are scaled to the data through m = mean(x) and s = std(x) per feature: locs ~
    Normal(m, 2 s); scales ~ HalfNormal(2 s); the correlations ~ LKJ(eta) (eta = 2: mild
    shrinkage towards independence, 1: uniform over correlation matrices).

    Sites
    -----
    weights : (K,) ~ Dirichlet(1, …, 1).
    locs : (K, D) ~ Normal(m, 2 s), in ``pyro.plate("components", K)``.
    scales : (K, D) ~ HalfNormal(2 s), in the same plate.
    corr_chol : (K, D, D) ~ LKJCholesky(D, eta), in the same plate.
    z : (N,) ~ Categorical(weights), enumerated.
    obs : (N, D) ~ MultivariateNormal(locs[z], scale_tril = diag(scales[z]) corr_chol[z]).

    Parameters
    ----------
    x : Tensor (N, D), D >= 2
    n_components : int
    eta : float
        LKJ concentration.
    """
    n, d = x.shape
    if d < 2:
        raise ValueError(f"lkj_gaussian models correlations between features; x has {d} "
                         "column. Use models/ordered_1d.py for one feature.")
    m, s = x.mean(0), x.std(0, correction=0).clamp_min(1e-12)
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(n_components, dtype=x.dtype)))
    with pyro.plate("components", n_components):
        locs = pyro.sample("locs", dist.Normal(m, 2 * s).to_event(1))  # (K, D)
        scales = pyro.sample("scales", dist.HalfNormal(2 * s).to_event(1))  # (K, D)
        corr_chol = pyro.sample("corr_chol", dist.LKJCholesky(
            d, torch.tensor(eta, dtype=x.dtype)))  # (K, D, D)
    scale_tril = scales[..., :, None] * corr_chol  # (K, D, D)
    with pyro.plate("data", n):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.MultivariateNormal(locs[z], scale_tril=scale_tril[z]), obs=x)


def simulate(n, *, seed, params=None):
    """Draw ``n`` points of a 2-D mixture of three correlated Gaussians (unless ``params``).

    Parameters
    ----------
    n : int
    seed : int
    params : dict, optional
        ``weights`` (K,), ``locs`` (K, D), ``scales`` (K, D), ``corr`` (K,) (2-D: the
        correlation of each component).

    Returns
    -------
    x : ndarray (n, 2)
    z : ndarray (n,) int
    params : dict of ndarray
    """
    if params is None:
        params = {"weights": np.array([0.3, 0.4, 0.3]),
                  "locs": np.array([[-4.0, 0.0], [0.0, 3.0], [4.0, -1.0]]),
                  "scales": np.array([[1.0, 0.6], [0.8, 0.8], [0.5, 1.1]]),
                  "corr": np.array([0.7, -0.5, 0.0])}
    params = {name: np.asarray(v, dtype=float) for name, v in params.items()}
    rng = np.random.default_rng(seed)
    z = rng.choice(len(params["weights"]), size=n, p=params["weights"])
    r = params["corr"][z]
    e1, e2 = rng.standard_normal(n), rng.standard_normal(n)
    u = np.stack([e1, r * e1 + np.sqrt(1 - r ** 2) * e2], 1)  # unit variances, correlation r
    x = params["locs"][z] + params["scales"][z] * u
    return x, z, params
