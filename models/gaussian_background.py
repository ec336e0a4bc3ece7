"""Gaussian clusters on a flat noise floor: K diagonal Gaussians plus one uniform background."""

import numpy as np
import pyro
import pyro.distributions as dist
import torch


def program(x, *, n_components=4):
    """K diagonal-covariance Gaussian components plus a uniform background over the data's box.

    Generative story: the box is the data's bounding box, widened by 0.1 % of its extent on
    each side (so the extreme points lie inside). Draw the background's share b of the
    points and the split w of the rest among the K Gaussians; for each Gaussian draw a mean
    and per-feature standard deviations. Each point picks a component z ∈ {0, …, K} with
    probabilities ((1 - b) w, b); z < K draws it from that Gaussian, z = K ("background")
    uniformly in the box. The background has its own weight, so the fit says how much of
    the data is noise, and noise points no longer inflate the Gaussians' covariances.

    Priors are scaled to the data through m = mean(x) and s = std(x) per feature, so raw
    (unstandardised) data work.

    Sites
    -----
    box : deterministic (2, D)
        [low, high] of the box; a fit records it, so new points are scored against the
        box of the data the model was fitted to.
    background : () ~ Beta(1, 1), the background's share of the points.
    weights : (K,) ~ Dirichlet(1, …, 1), the Gaussians' shares of the rest.
    locs : (K, D) ~ Normal(m, 2 s), in ``pyro.plate("components", K)``.
    scales : (K, D) ~ LogNormal(log(s / 4), 1), per-feature standard deviations.
    z : (N,) ~ Categorical(((1 - background) · weights, background)), enumerated; the value
        K is the background.
    obs : (N, D) ~ Normal(locs[z], scales[z]) if z < K, else Uniform(low, high).

    Parameters
    ----------
    x : Tensor (N, D)
    n_components : int
        K, the number of Gaussian components (the background comes on top).
    """
    n, d = x.shape
    m, s = x.mean(0), x.std(0, correction=0).clamp_min(1e-12)  # (D,) each
    low, high = x.min(0).values, x.max(0).values
    pad = 1e-3 * (high - low).clamp_min(1e-12)
    box = pyro.deterministic("box", torch.stack([low - pad, high + pad]), event_dim=2)
    one = torch.ones((), dtype=x.dtype)
    background = pyro.sample("background", dist.Beta(one, one))
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(n_components, dtype=x.dtype)))
    probs = torch.cat([(1 - background) * weights, background.reshape(1)])  # (K + 1,)
    with pyro.plate("components", n_components):
        locs = pyro.sample("locs", dist.Normal(m, 2 * s).to_event(1))  # (K, D)
        scales = pyro.sample("scales", dist.LogNormal((s / 4).log(), 1.0).to_event(1))
    with pyro.plate("data", n):
        z = pyro.sample("z", dist.Categorical(probs), infer={"enumerate": "parallel"})
        k = z.clamp(max=n_components - 1)  # the background row borrows a Gaussian's (unused)
        gaussian = dist.Normal(locs[k], scales[k]).to_event(1)
        flat = dist.Uniform(box[0], box[1], validate_args=False).to_event(1)
        pyro.sample("obs", dist.MaskedMixture(z == n_components, gaussian, flat,
                                              validate_args=False), obs=x)


def simulate(n, *, seed, params=None):
    """Draw ``n`` points of a background model (2-D, 4 clusters unless ``params`` says).

    Parameters
    ----------
    n : int
    seed : int
    params : dict, optional
        ``background`` (), ``weights`` (K,), ``locs`` (K, D), ``scales`` (K, D), ``box``
        (2, D). Default: four equal clusters at (±2, ±2) with standard deviations 0.3–0.6,
        20 % background in the box [-8, 8]².

    Returns
    -------
    x : ndarray (n, D)
    z : ndarray (n,) int
        The component of each point (K for background).
    params : dict of ndarray
    """
    if params is None:
        params = {"background": 0.2, "weights": np.full(4, 0.25),
                  "locs": np.array([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]]),
                  "scales": np.array([[0.4, 0.4], [0.6, 0.3], [0.3, 0.5], [0.5, 0.5]]),
                  "box": np.array([[-8.0, -8.0], [8.0, 8.0]])}
    params = {name: np.asarray(v, dtype=float) for name, v in params.items()}
    rng = np.random.default_rng(seed)
    k, d = params["locs"].shape
    probs = np.append((1 - params["background"]) * params["weights"], params["background"])
    z = rng.choice(k + 1, size=n, p=probs)
    low, high = params["box"]
    j = np.minimum(z, k - 1)
    gauss = params["locs"][j] + params["scales"][j] * rng.standard_normal((n, d))
    noise = low + (high - low) * rng.random((n, d))
    x = np.where((z == k)[:, None], noise, gauss)
    return x, z, params
