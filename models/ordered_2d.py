"""A 2-D Gaussian mixture whose labels are identified by ordering the first coordinate of the
means; LKJ correlations and half-normal scales (the identified twin of lkj_gaussian.py)."""

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import OrderedTransform


def program(x, *, n_components=3, eta=2.0):
    """K full-covariance Gaussians whose means increase along the first feature.

    Generative story: draw the weights; draw the first coordinate of the K means as an
    ordered vector (a first mean plus K - 1 positive gaps, as ordered_1d.py does) and the
    other coordinates freely; for each component draw a standard deviation per feature and a
    correlation matrix (through its Cholesky factor, LKJ). Each point picks a component z and
    is drawn from MultivariateNormal(locs[z], diag(scales[z]) L[z] L[z]ᵀ diag(scales[z])),
    where locs = [locs_first, locs_rest] (K, D).

    The ordering removes the K! symmetric copies of every mode, so the draws need no
    relabelling (probmix skips it: permuting the components changes this program's density).
    It identifies the labels well only when the components' first coordinates are apart
    compared with their spreads; order the feature that separates them best first.

    Priors are scaled to the data through m = mean(x) and s = std(x) per feature: the first
    mean's first coordinate ~ Normal(m_1 - s_1, 2 s_1) and the log of each gap ~
    Normal(log s_1, 1) (written with Pyro's OrderedTransform, locs_first = [u_1, u_1 +
    exp(u_2), ...] with u ~ Normal, so the density of locs_first carries the transform's
    Jacobian); locs_rest ~ Normal(m_2:, 2 s_2:); scales ~ HalfNormal(2 s); the correlations ~
    LKJ(eta), as in lkj_gaussian.py.

    Sites
    -----
    weights : (K,) ~ Dirichlet(1, …, 1).
    locs_first : (K,) ordered vector, u = (locs_first_1, log(locs_first_2 - locs_first_1), …)
        ~ Normal([m_1 - s_1, log s_1, …], [2 s_1, 1, …]).
    locs_rest : (K, D - 1) ~ Normal(m_2:, 2 s_2:), in ``pyro.plate("components", K)``.
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
        raise ValueError(f"ordered_2d orders the first of several features; x has {d} "
                         "column. Use models/ordered_1d.py for one feature.")
    m, s = x.mean(0), x.std(0, correction=0).clamp_min(1e-12)
    k = n_components
    base_loc = torch.cat([(m[0] - s[0]).reshape(1), s[0].log().expand(k - 1)])  # (K,)
    base_scale = torch.cat([(2 * s[0]).reshape(1), torch.ones(k - 1, dtype=x.dtype)])  # (K,)
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(k, dtype=x.dtype)))
    locs_first = pyro.sample("locs_first", dist.TransformedDistribution(
        dist.Normal(base_loc, base_scale).to_event(1), [OrderedTransform()]))  # (K,)
    with pyro.plate("components", k):
        locs_rest = pyro.sample("locs_rest", dist.Normal(m[1:], 2 * s[1:]).to_event(1))
        scales = pyro.sample("scales", dist.HalfNormal(2 * s).to_event(1))  # (K, D)
        corr_chol = pyro.sample("corr_chol", dist.LKJCholesky(
            d, torch.tensor(eta, dtype=x.dtype)))  # (K, D, D)
    locs = torch.cat([locs_first.unsqueeze(-1), locs_rest], -1)  # (K, D)
    scale_tril = scales[..., :, None] * corr_chol  # (K, D, D)
    with pyro.plate("data", n):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.MultivariateNormal(locs[z], scale_tril=scale_tril[z]), obs=x)


def locations(params):
    """The component means (K, D) (or (..., K, D) for draws) from ``locs_first`` and ``locs_rest``.

    Parameters
    ----------
    params : mapping
        ``fit.params`` (``locs_first`` (K,), ``locs_rest`` (K, D - 1)) or ``fit.draws``
        (leading chain and draw axes).

    Returns
    -------
    ndarray (..., K, D)
    """
    first = np.asarray(params["locs_first"])
    return np.concatenate([first[..., None], np.asarray(params["locs_rest"])], -1)


def simulate(n, *, seed, params=None):
    """Draw ``n`` points of a 2-D mixture of three correlated Gaussians (unless ``params``).

    The default components are 2.5 apart along the first feature (their spreads there 0.6 to
    0.8), so its ordering identifies them.

    Parameters
    ----------
    n : int
    seed : int
    params : dict, optional
        ``weights`` (K,), ``locs`` (K, D) with increasing first column, ``scales`` (K, D),
        ``corr`` (K,) (2-D: the correlation of each component).

    Returns
    -------
    x : ndarray (n, 2)
    z : ndarray (n,) int
    params : dict of ndarray
    """
    if params is None:
        params = {"weights": np.array([0.3, 0.4, 0.3]),
                  "locs": np.array([[-2.5, 1.0], [0.0, -1.5], [2.5, 1.5]]),
                  "scales": np.array([[0.8, 0.6], [0.7, 0.9], [0.6, 0.8]]),
                  "corr": np.array([0.5, -0.4, 0.0])}
    params = {name: np.asarray(v, dtype=float) for name, v in params.items()}
    rng = np.random.default_rng(seed)
    z = rng.choice(len(params["weights"]), size=n, p=params["weights"])
    r = params["corr"][z]
    e1, e2 = rng.standard_normal(n), rng.standard_normal(n)
    u = np.stack([e1, r * e1 + np.sqrt(1 - r ** 2) * e2], 1)  # unit variances, correlation r
    x = params["locs"][z] + params["scales"][z] * u
    return x, z, params
