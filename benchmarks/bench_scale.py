"""Throughput of EM and k-means in memory, streamed from a .npy file, and on 2 processes.

For each data set, one run times (best of ``--repeat``) a fixed number of
iterations of:

- EM (full covariance, closed form) in memory, streamed from a
  .npy file read chunk by chunk (``--chunk`` rows), and data-parallel with
  ``torchrun --nproc_per_node=2`` (gloo, each process one thread, half the rows);
- Lloyd k-means the same three ways;
- scikit-learn's GaussianMixture / KMeans on the same rows and iterations as the
  reference (same thread count as probmix in memory).

Throughput is rows × iterations per second; ratios are against scikit-learn.
On a machine with a GPU the in-memory rows also run with ``device="cuda"``.

Usage::

    python benchmarks/bench_scale.py [--repeat 2] [--iters 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import probmix
from _report import write_table

CASES = [(1_000_000, 2, 5), (1_000_000, 10, 10)]
WORKER = """
import json, sys, time, warnings
import numpy as np, torch, torch.distributed as dist, probmix
torch.set_num_threads(1)
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
path, k, iters, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = np.load(path, mmap_mode="r")
shard = np.array(np.array_split(np.arange(x.shape[0]), world)[rank])
shard = np.array(x[shard[0]:shard[-1] + 1], dtype=np.float64)
init = np.load(path.replace(".npy", "_init.npz"))
times = {}
for name in ("em", "kmeans"):
    best = float("inf")
    for _ in range(repeat):
        dist.barrier(); t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "em":
                probmix.fit(probmix.GaussianMixture(k, prior="flat"), shard, engine="map",
                            init=dict(init), max_iter=iters, tol=0.0, distributed=True)
            else:
                probmix.KMeans(k, init=init["means"], max_iter=iters, tol=0.0).fit(
                    shard, distributed=True)
        dist.barrier(); best = min(best, time.perf_counter() - t0)
    times[name] = best
if rank == 0:
    print(json.dumps(times))
dist.destroy_process_group()
"""


def best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def make_data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.uniform(-10, 10, size=(k, d))
    z = rng.integers(0, k, size=n)
    return means[z] + rng.standard_normal((n, d)), means


def quiet(fn):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=262_144)
    parser.add_argument("--quick", action="store_true", help="100k rows, for a smoke test")
    args = parser.parse_args()
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.mixture import GaussianMixture as SkGMM

    cases = [(100_000, d, k) for _, d, k in CASES] if args.quick else CASES
    it = args.iters
    rows, folder = [], Path(tempfile.mkdtemp(prefix="probmix-bench-scale-"))
    for n, d, k in cases:
        x, means = make_data(n, d, k)
        path = folder / f"x_{n}_{d}.npy"
        np.save(path, x)
        start = quiet(lambda: probmix.fit(probmix.GaussianMixture(k, prior="flat"), x,
                                          engine="map", max_iter=1))()
        init = {key: np.asarray(v) for key, v in start.params.items()}
        np.savez(str(path).replace(".npy", "_init.npz"), **init)
        model = probmix.GaussianMixture(k, prior="flat")
        prec = np.linalg.inv(init["covariances"])

        def em(source, **options):
            return quiet(lambda: probmix.fit(model, source, engine="map", init=init,
                                             max_iter=it, tol=0.0, **options))

        def km(source, **options):
            return quiet(lambda: probmix.KMeans(k, init=init["means"], max_iter=it, tol=0.0)
                         .fit(source, **options))

        sk_em = quiet(lambda: SkGMM(k, covariance_type="full", max_iter=it, tol=0.0,
                                    weights_init=init["weights"], means_init=init["means"],
                                    precisions_init=prec).fit(x))
        sk_km = quiet(lambda: SkKMeans(k, init=init["means"], n_init=1, max_iter=it, tol=0.0,
                                       algorithm="lloyd").fit(x))
        timings = {
            "em": {"sklearn": best_time(sk_em, args.repeat),
                   "memory": best_time(em(x), args.repeat),
                   "streamed": best_time(em(str(path), chunk_size=args.chunk), args.repeat)},
            "kmeans": {"sklearn": best_time(sk_km, args.repeat),
                       "memory": best_time(km(x), args.repeat),
                       "streamed": best_time(km(str(path), chunk_size=args.chunk), args.repeat)},
        }
        if torch.cuda.is_available():
            timings["em"]["cuda"] = best_time(em(x, device="cuda"), args.repeat)
            timings["kmeans"]["cuda"] = best_time(
                quiet(lambda: probmix.KMeans(k, init=init["means"], max_iter=it, tol=0.0,
                                             device="cuda").fit(x)), args.repeat)
        script = folder / "worker.py"
        script.write_text(WORKER)
        out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              "--nproc_per_node=2", str(script), str(path), str(k), str(it),
                              str(args.repeat)], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        if out.returncode == 0:
            dist_times = json.loads(out.stdout.strip().splitlines()[-1])
            for name in ("em", "kmeans"):
                timings[name]["2 processes"] = dist_times[name]
        else:
            print(out.stderr[-2000:])
        for name, modes in timings.items():
            ref = modes["sklearn"]
            for mode, seconds in modes.items():
                rows.append([name, f"{n:,}×{d} K={k}", mode, f"{seconds / it * 1e3:.1f}",
                             f"{n * it / seconds / 1e6:.2f}", f"{ref / seconds:.2f}×"])
                print(rows[-1])
    write_table(
        "scale", "EM and k-means throughput: in memory, streamed, 2 processes",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads in process, {it} iterations "
        f"from the same start, best of {args.repeat}; streamed: a .npy file read in chunks "
        f"of {args.chunk:,} rows; 2 processes: torchrun + gloo, 1 thread each. The ratio is "
        "scikit-learn's time over probmix's (> 1: probmix faster). Streamed and distributed "
        "times include the pass that computes the data's moments.",
        ["algorithm", "data", "mode", "ms / iteration", "M rows·iter / s", "vs scikit-learn"],
        rows)


if __name__ == "__main__":
    main()
