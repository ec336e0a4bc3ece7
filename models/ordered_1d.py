"""A 1-D Gaussian mixture with ordered means: the labels are identified by the prior."""

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import OrderedTransform


def program(x, *, n_components=3):
    """K 1-D Gaussians whose means are constrained to increase, mu_1 < mu_2 < ... < mu_K.

    Generative story: draw the weights; draw the ordered means as a first mean plus K - 1
    positive gaps; draw a standard deviation per component. Each point picks a component z
    and is drawn from Normal(locs[z], scales[z]).

    The ordering removes the K! symmetric copies of every mode (label switching), so
    posterior draws need no relabelling; probmix skips relabelling for a program with an
    ordered site. Compare with relabelling the draws of an unordered program after the fact.

    Priors are scaled to the data through m = mean(x) and s = std(x): the first mean is
    Normal(m - s, 2 s); the log of each gap is Normal(log s, 1) (as the ordered transform
    is written: locs = [u_1, u_1 + exp(u_2), ...] with u ~ Normal, so the density of locs
    carries the transform's Jacobian).

    Sites
    -----
    weights : (K,) ~ Dirichlet(1, …, 1).
    locs : (K,) ordered vector, u = (locs_1, log(locs_2 - locs_1), …) ~
        Normal([m - s, log s, …], [2 s, 1, …]).
    scales : (K,) ~ LogNormal(log(s / 4), 1), in ``pyro.plate("components", K)``.
    z : (N,) ~ Categorical(weights), enumerated.
    obs : (N,) ~ Normal(locs[z], scales[z]), the single column of x.

    Parameters
    ----------
    x : Tensor (N, 1)
    n_components : int
    """
    n, d = x.shape
    if d != 1:
        raise ValueError(f"ordered_1d models one feature; x has {d} columns. Pick one column "
                         f"(x[:, [j]]) or use a multivariate model from models/.")
    m, s = x.mean(), x.std(correction=0).clamp_min(1e-12)
    base_loc = torch.cat([(m - s).reshape(1), s.log().expand(n_components - 1)])  # (K,)
    base_scale = torch.cat([(2 * s).reshape(1), torch.ones(n_components - 1, dtype=x.dtype)])
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(n_components, dtype=x.dtype)))
    locs = pyro.sample("locs", dist.TransformedDistribution(
        dist.Normal(base_loc, base_scale).to_event(1), [OrderedTransform()]))  # (K,)
    with pyro.plate("components", n_components):
        scales = pyro.sample("scales", dist.LogNormal(s.log() - np.log(4.0), 1.0))  # (K,)
    with pyro.plate("data", n):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.Normal(locs[z], scales[z]), obs=x[:, 0])


def simulate(n, *, seed, params=None):
    """Draw ``n`` points of a 1-D mixture (3 components unless ``params`` says).

    Parameters
    ----------
    n : int
    seed : int
    params : dict, optional
        ``weights`` (K,), ``locs`` (K,) increasing, ``scales`` (K,). Default: means -4, 0, 3.

    Returns
    -------
    x : ndarray (n, 1)
    z : ndarray (n,) int
    params : dict of ndarray
    """
    if params is None:
        params = {"weights": np.array([0.3, 0.4, 0.3]), "locs": np.array([-4.0, 0.0, 3.0]),
                  "scales": np.array([1.0, 0.7, 0.8])}
    params = {name: np.asarray(v, dtype=float) for name, v in params.items()}
    rng = np.random.default_rng(seed)
    z = rng.choice(len(params["weights"]), size=n, p=params["weights"])
    x = params["locs"][z] + params["scales"][z] * rng.standard_normal(n)
    return x[:, None], z, params
