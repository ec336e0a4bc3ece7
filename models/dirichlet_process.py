"""A truncated Dirichlet-process Gaussian mixture: the posterior decides how many clusters."""

import numpy as np
import pyro
import pyro.distributions as dist
import torch


def program(x, *, n_components=10, concentration=1.0):
    """Stick-breaking mixture of at most K = ``n_components`` diagonal Gaussians.

    Generative story: break a unit stick K - 1 times, each time keeping a Beta(1, α)
    fraction v_k of what is left; the pieces are the weights
    π_k = v_k ∏_{j<k} (1 - v_j) (the last takes the rest). Components beyond those the data
    need get vanishing weight, so K is a cap, not a choice. Each component draws a mean and
    per-feature standard deviations; each point picks a component z and is drawn from it.

    Priors are scaled to the data through m = mean(x) and s = std(x) per feature, so raw
    (unstandardised) data work.

    Sites
    -----
    sticks : (K - 1,) ~ Beta(1, α), the stick-breaking fractions (α = ``concentration``;
        α ≥ 1 keeps the MAP finite, smaller α favours fewer components).
    locs : (K, D) ~ Normal(m, 2 s), in ``pyro.plate("components", K)``.
    scales : (K, D) ~ LogNormal(log(s / 4), 1).
    z : (N,) ~ Categorical(π(sticks)), enumerated.
    obs : (N, D) ~ Normal(locs[z], scales[z]).

    Parameters
    ----------
    x : Tensor (N, D)
    n_components : int
        K, the truncation level.
    concentration : float
        α of the Dirichlet process.
    """
    n, d = x.shape
    m, s = x.mean(0), x.std(0, correction=0).clamp_min(1e-12)  # (D,) each
    alpha = torch.tensor(float(concentration), dtype=x.dtype)
    with pyro.plate("sticks_plate", n_components - 1):
        sticks = pyro.sample("sticks", dist.Beta(torch.ones_like(alpha), alpha))  # (K-1,)
    weights = weights_from_sticks(sticks)  # (K,)
    with pyro.plate("components", n_components):
        locs = pyro.sample("locs", dist.Normal(m, 2 * s).to_event(1))  # (K, D)
        scales = pyro.sample("scales", dist.LogNormal((s / 4).log(), 1.0).to_event(1))
    with pyro.plate("data", n):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.Normal(locs[z], scales[z]).to_event(1), obs=x)


def weights_from_sticks(sticks):
    """Mixture weights (..., K) from K - 1 stick-breaking fractions (..., K - 1)."""
    rest = torch.cumprod(1 - sticks, dim=-1)  # mass left after each break
    ones = torch.ones_like(sticks[..., :1])
    return torch.cat([sticks, ones], -1) * torch.cat([ones, rest], -1)


def simulate(n, *, seed, params=None):
    """Draw ``n`` points from a few diagonal Gaussians (2-D, 3 clusters unless ``params`` says).

    Parameters
    ----------
    n : int
    seed : int
    params : dict, optional
        ``weights`` (J,), ``locs`` (J, D), ``scales`` (J, D) of the J clusters actually used.

    Returns
    -------
    x : ndarray (n, D)
    z : ndarray (n,) int
    params : dict of ndarray
    """
    if params is None:
        params = {"weights": np.array([0.5, 0.3, 0.2]),
                  "locs": np.array([[-3.0, 0.0], [3.0, 2.0], [0.0, -3.0]]),
                  "scales": np.array([[0.8, 0.6], [0.5, 0.9], [0.7, 0.7]])}
    params = {name: np.asarray(v, dtype=float) for name, v in params.items()}
    rng = np.random.default_rng(seed)
    k, d = params["locs"].shape
    z = rng.choice(k, size=n, p=params["weights"])
    return params["locs"][z] + params["scales"][z] * rng.standard_normal((n, d)), z, params
