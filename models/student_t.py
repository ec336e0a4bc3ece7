"""Heavy-tailed clusters: a mixture of multivariate Student-t components (robust to outliers)."""

import numpy as np
import pyro
import pyro.distributions as dist
import torch


def program(x, *, n_components=2):
    """K multivariate Student-t components, each with its own degrees of freedom.

    Generative story: draw the mixture weights; for each component draw its degrees of
    freedom ν_k, a location, per-feature scales and a correlation matrix (through its
    Cholesky factor). Each point picks a component z and is drawn from
    MultivariateStudentT(ν_z, loc_z, diag(scales_z) · corr_chol_z). A small ν gives heavy
    tails: an outlier costs the likelihood little, so it barely moves the locations, where
    a Gaussian component would shift its mean and inflate its covariance towards it.

    Priors are scaled to the data through m = mean(x) and s = std(x) per feature, so raw
    (unstandardised) data work.

    Sites
    -----
    weights : (K,) ~ Dirichlet(1, …, 1).
    df : (K,) ~ Gamma(2, 0.1) (mean 20, mode 10: from very heavy tails to nearly Gaussian),
        in ``pyro.plate("components", K)``.
    locs : (K, D) ~ Normal(m, 2 s).
    scales : (K, D) ~ LogNormal(log(s / 4), 1).
    corr_chol : (K, D, D) ~ LKJCholesky(D, 2) (only when D > 1; the identity for D = 1).
    z : (N,) ~ Categorical(weights), enumerated.
    obs : (N, D) ~ MultivariateStudentT(df[z], locs[z], scales[z] · corr_chol[z]).

    Parameters
    ----------
    x : Tensor (N, D)
    n_components : int
    """
    n, d = x.shape
    m, s = x.mean(0), x.std(0, correction=0).clamp_min(1e-12)  # (D,) each
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(n_components, dtype=x.dtype)))
    with pyro.plate("components", n_components):
        df = pyro.sample("df", dist.Gamma(torch.tensor(2.0, dtype=x.dtype), 0.1))  # (K,)
        locs = pyro.sample("locs", dist.Normal(m, 2 * s).to_event(1))  # (K, D)
        scales = pyro.sample("scales", dist.LogNormal((s / 4).log(), 1.0).to_event(1))
        if d > 1:
            corr_chol = pyro.sample("corr_chol", dist.LKJCholesky(d, torch.tensor(2.0,
                                                                               dtype=x.dtype)))
        else:
            corr_chol = torch.ones(n_components, 1, 1, dtype=x.dtype)  # (K, 1, 1)
    scale_tril = scales[..., None] * corr_chol  # (K, D, D): row i scaled by scales_i
    with pyro.plate("data", n):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.MultivariateStudentT(df[z], locs[z], scale_tril[z]), obs=x)


def simulate(n, *, seed, params=None):
    """Draw ``n`` points from a Student-t mixture (2-D, 2 components unless ``params`` says).

    Parameters
    ----------
    n : int
    seed : int
    params : dict, optional
        ``weights`` (K,), ``df`` (K,), ``locs`` (K, D), ``scales`` (K, D), ``corr_chol``
        (K, D, D). Default: two components at (-3, 0) and (3, 0), ν = 3 and 6.

    Returns
    -------
    x : ndarray (n, D)
    z : ndarray (n,) int
    params : dict of ndarray
    """
    if params is None:
        r = 0.5
        params = {"weights": np.array([0.5, 0.5]), "df": np.array([3.0, 6.0]),
                  "locs": np.array([[-3.0, 0.0], [3.0, 0.0]]),
                  "scales": np.array([[1.0, 0.7], [0.8, 1.2]]),
                  "corr_chol": np.array([[[1.0, 0.0], [r, np.sqrt(1 - r**2)]], np.eye(2)])}
    params = {name: np.asarray(v, dtype=float) for name, v in params.items()}
    rng = np.random.default_rng(seed)
    k, d = params["locs"].shape
    z = rng.choice(k, size=n, p=params["weights"])
    tril = params["scales"][:, :, None] * params["corr_chol"]  # (K, D, D)
    g = np.einsum("nij,nj->ni", tril[z], rng.standard_normal((n, d)))
    w = rng.chisquare(params["df"][z]) / params["df"][z]  # (n,): t = g / sqrt(w)
    return params["locs"][z] + g / np.sqrt(w)[:, None], z, params
