"""Launched by tests/test_scale.py under ``torchrun``: each process fits its shard.

Usage: torchrun --nproc_per_node=P distributed_fit.py DATA.npy INIT.npz OUT_DIR
Every rank writes OUT_DIR/rank{r}.npz with its fitted parameters.
"""

import sys

import numpy as np
import torch
import torch.distributed as dist

import probmix


def main(data_path, init_path, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    x = np.load(data_path)
    shard = np.array_split(x, world)[rank]
    init = dict(np.load(init_path))
    out = {}
    for cov in ("full", "diag", "spherical", "tied"):
        model = probmix.GaussianMixture(3, covariance=cov, prior="default")
        fit = probmix.fit(model, shard, engine="map", init={k: init[f"{cov}_{k}"] for k in
                          ("weights", "means", "covariances")}, max_iter=20, tol=0.0,
                          distributed=True)
        out.update({f"{cov}_{k}": v for k, v in fit.params.items()})
        out[f"{cov}_lower_bounds"] = fit.lower_bounds
    model = probmix.GaussianMixture(3, covariance="full")
    fit = probmix.fit(model, shard, engine="map", seed=3, distributed=True)  # k-means init
    out.update({f"kpp_{k}": v for k, v in fit.params.items()})
    km = probmix.KMeans(5, init=init["kmeans_init"]).fit(shard, distributed=True)
    out["kmeans_centers"], out["kmeans_inertia"] = km.cluster_centers_, np.array(km.inertia_)
    out["kmeans_labels"] = km.labels_
    kpp = probmix.KMeans(3, seed=0).fit(shard, distributed=True)  # k-means++ on a common sample
    out["kpp_centers"] = kpp.cluster_centers_
    np.savez(f"{out_dir}/rank{rank}.npz", **out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
