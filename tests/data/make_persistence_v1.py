"""Writes the format-1 fixture files that tests/test_persistence.py loads (run from the repo root).

Generated once with the code of commit 2eef0e9 (before persistence became a registry), so the
test shows that files written by that code still load. Do not regenerate them with newer code.
"""

import pathlib
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import torch

import probmix

HERE = pathlib.Path(__file__).parent


def two_locs(x):
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(2, dtype=x.dtype)))
    scale = pyro.sample("scale", dist.LogNormal(torch.zeros((), dtype=x.dtype), 1.0))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(torch.zeros((), dtype=x.dtype), 10.0))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.Normal(locs[z], scale), obs=x[:, 0])


def main():
    x, _ = probmix.three_clusters(30, seed=0)
    np.save(HERE / "persistence_v1_x.npy", x)
    prior = probmix.Prior(weight_concentration=np.array([1.0, 2.0, 3.0]), mean_loc=[0.5, 1.0],
                          mean_precision=0.5, dof=4.0, scale=np.eye(2) * 2)
    model = probmix.GaussianMixture(3, covariance="tied", prior=prior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probmix.fit(model, x, seed=0).save(HERE / "persistence_v1_map.npz")
        probmix.fit(probmix.GaussianMixture(2, covariance="diag"), x, engine="svi",
                    method="cavi", num_draws=4, seed=0).save(HERE / "persistence_v1_cavi.npz")
        probmix.fit(two_locs, x[:, :1], method="gradient", max_iter=5,
                    seed=0).save(HERE / "persistence_v1_program.npz")
    probmix.KMeans(3, n_init=1, seed=0).fit(x).save(HERE / "persistence_v1_kmeans.npz")
    probmix.MeanShift(bandwidth=1.5).fit(x).save(HERE / "persistence_v1_meanshift.npz")
    expected = {name: probmix.load(HERE / f"persistence_v1_{name}.npz", **kw).predict_proba(xx)
                for name, kw, xx in (("map", {}, x), ("cavi", {}, x),
                                     ("program", {"model": two_locs}, x[:, :1]))}
    for name in ("kmeans", "meanshift"):
        expected[name] = probmix.load(HERE / f"persistence_v1_{name}.npz").predict(x)
    np.savez(HERE / "persistence_v1_expected.npz", **expected)


if __name__ == "__main__":
    main()
