"""Count data: a mixture of Poissons (a non-Gaussian observation model)."""

import numpy as np
import pyro
import pyro.distributions as dist
import torch


def program(x, *, n_components=2):
    """K components of independent Poisson counts, one rate per component and feature.

    Generative story: draw the mixture weights; for each component and feature draw a
    rate. Each row picks a component z and each of its D counts is drawn from
    Poisson(rate[z, j]).

    The rate prior is scaled to the data: Gamma(2, 2 / c) with c = mean(x) per feature
    (prior mean c, mode c / 2, broad enough to cover rates from near 0 to a few times c).

    Sites
    -----
    weights : (K,) ~ Dirichlet(1, …, 1).
    rate : (K, D) ~ Gamma(2, 2 / c), in ``pyro.plate("components", K)``.
    z : (N,) ~ Categorical(weights), enumerated.
    obs : (N, D) ~ Poisson(rate[z]) (non-negative integer counts stored as floats).

    Parameters
    ----------
    x : Tensor (N, D)
        Counts.
    n_components : int
    """
    n, d = x.shape
    c = x.mean(0).clamp_min(1e-3)  # (D,)
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(n_components, dtype=x.dtype)))
    with pyro.plate("components", n_components):
        rate = pyro.sample("rate", dist.Gamma(torch.full_like(c, 2.0), 2.0 / c).to_event(1))
    with pyro.plate("data", n):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.Poisson(rate[z]).to_event(1), obs=x)


def simulate(n, *, seed, params=None):
    """Draw ``n`` rows of counts (2 features, 2 components unless ``params`` says).

    Parameters
    ----------
    n : int
    seed : int
    params : dict, optional
        ``weights`` (K,), ``rate`` (K, D). Default: rates (2, 10) and (15, 3), weights
        0.4 / 0.6.

    Returns
    -------
    x : ndarray (n, D) float
    z : ndarray (n,) int
    params : dict of ndarray
    """
    if params is None:
        params = {"weights": np.array([0.4, 0.6]), "rate": np.array([[2.0, 10.0], [15.0, 3.0]])}
    params = {name: np.asarray(v, dtype=float) for name, v in params.items()}
    rng = np.random.default_rng(seed)
    z = rng.choice(len(params["weights"]), size=n, p=params["weights"])
    return rng.poisson(params["rate"][z]).astype(float), z, params
