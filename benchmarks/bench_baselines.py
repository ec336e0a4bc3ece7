"""Time probmix's KMeans and MeanShift side by side with scikit-learn's.

Each case runs the same computation in both libraries -- KMeans: Lloyd from
the same initial centres for the same number of iterations (tol=0 on data
that does not settle, and the iteration counts are printed to check it);
MeanShift: flat kernel, same bandwidth and seeds -- and reports the best of
``--repeat`` wall-clock times, the ratio sklearn / probmix (> 1: probmix is
faster) and how far the two results are apart.

Usage::

    python benchmarks/bench_baselines.py [--threads 2] [--repeat 3] [--device cpu] [--quick] [--full]

Both libraries get the same number of threads (torch.set_num_threads and
threadpoolctl for scikit-learn's OpenMP/BLAS pools). ``--full`` adds mean shift from
every one of 20,000 points (scikit-learn takes minutes). The table is also written to
benchmarks/results/bench_baselines.md. On the CPU probmix runs its fused numba kernels
(:mod:`probmix.baselines.fused`); ``PROBMIX_FUSED=0`` times the plain torch code instead.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import MeanShift as SkMeanShift
from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus
from threadpoolctl import threadpool_limits

from _report import write_table

from probmix.exceptions import ConvergenceWarning
from probmix.baselines.kmeans import KMeans, kmeans_plusplus, lloyd
from probmix.baselines.meanshift import MeanShift


def best_time(fn, repeat):
    """Best wall-clock seconds of ``repeat`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def seven_blobs(n, seed=0):
    """Walkthrough 3's data: 7 centroids uniform in [-50, 50]^2, covariance 5 I."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-50, 50, size=(7, 2))
    return centres[np.arange(n) % 7] + rng.normal(scale=np.sqrt(5.0), size=(n, 2))


def kmeans_case(n, d, k, iters, repeat, device):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))  # no cluster structure: Lloyd keeps moving for `iters` steps
    init = x[rng.choice(n, k, replace=False)]
    t_sk, sk = best_time(lambda: SkKMeans(k, init=init, n_init=1, max_iter=iters, tol=0,
                                          algorithm="lloyd").fit(x), repeat)
    t_pm, pm = best_time(lambda: KMeans(k, init=init, max_iter=iters, tol=0,
                                        device=device).fit(x), repeat)
    agree = (f"labels {np.mean(sk.labels_ == pm.labels_):.4f}, "
             f"|dc| {np.abs(sk.cluster_centers_ - pm.cluster_centers_).max():.1e}, "
             f"iters {sk.n_iter_}/{pm.n_iter_}")
    return f"KMeans lloyd {n:,}x{d} K={k}, {iters} it", t_sk, t_pm, agree


def kmeans_restarts_case(n, d, k, restarts, iters, repeat, device):
    """R restarts from given centres: sklearn runs them in turn, probmix as one batch."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d))
    inits = np.stack([x[rng.choice(n, k, replace=False)] for _ in range(restarts)])

    def sk_run():
        return [SkKMeans(k, init=c, n_init=1, max_iter=iters, tol=0, algorithm="lloyd").fit(x)
                for c in inits]

    xt = torch.tensor(x, device=device)
    it = torch.tensor(inits, device=device)
    t_sk, sk = best_time(sk_run, repeat)
    t_pm, pm = best_time(lambda: lloyd(xt, it, max_iter=iters, tol=0), repeat)
    inertia = np.array([m.inertia_ for m in sk])
    agree = f"max rel. d(inertia) {np.max(np.abs(pm[2].cpu().numpy() / inertia - 1)):.1e}"
    return f"KMeans lloyd {n:,}x{d} K={k}, {restarts} restarts, {iters} it", t_sk, t_pm, agree


def kmeanspp_case(n, d, k, repeat, device):
    """Greedy k-means++ seeding alone (2 + ln K candidates per centre in both libraries)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, d))
    xt = torch.tensor(x, device=device)
    t_sk, _ = best_time(lambda: sk_kmeans_plusplus(x, k, random_state=0), repeat)
    t_pm, _ = best_time(lambda: kmeans_plusplus(
        xt, k, generator=torch.Generator(device=device).manual_seed(0)), repeat)
    return f"k-means++ seeding {n:,}x{d} K={k}", t_sk, t_pm, "same algorithm, other draws"


def meanshift_case(label, x, bandwidth, bin_seeding, repeat, device):
    t_sk, sk = best_time(lambda: SkMeanShift(bandwidth=bandwidth, bin_seeding=bin_seeding)
                         .fit(x), repeat)
    t_pm, pm = best_time(lambda: MeanShift(bandwidth=bandwidth, kernel="flat",
                                           bin_seeding=bin_seeding, device=device).fit(x), repeat)
    if sk.cluster_centers_.shape == pm.cluster_centers_.shape:
        agree = (f"{len(pm.cluster_centers_)} modes, labels {np.mean(sk.labels_ == pm.labels_):.4f}"
                 f", |dc| {np.abs(sk.cluster_centers_ - pm.cluster_centers_).max():.1e}")
    else:
        agree = f"modes differ: {len(sk.cluster_centers_)} vs {len(pm.cluster_centers_)}"
    return label, t_sk, t_pm, agree


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for both libraries")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (KMeans)")
    parser.add_argument("--device", default="cpu", help="probmix device: cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="smaller problems, one run each")
    parser.add_argument("--full", action="store_true",
                        help="also mean shift from all 20,000 points (scikit-learn: minutes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # The KMeans cases stop at a fixed iteration count on purpose.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    scale = 10 if args.quick else 1
    repeat = 1 if args.quick else args.repeat

    head = (f"probmix vs scikit-learn | {platform.processor() or platform.machine()}, "
            f"{args.threads} thread(s), probmix on {args.device}, torch {torch.__version__}")
    print(head, flush=True)
    rows = []
    with threadpool_limits(limits=args.threads):
        rows.append(kmeans_case(100_000 // scale, 10, 10, 50, repeat, args.device))
        rows.append(kmeans_case(1_000_000 // scale, 2, 5, 50, repeat, args.device))
        rows.append(kmeans_case(200_000 // scale, 50, 20, 20, repeat, args.device))
        rows.append(kmeans_restarts_case(100_000 // scale, 10, 10, 10, 20, repeat, args.device))
        rows.append(kmeanspp_case(1_000_000 // scale, 2, 5, repeat, args.device))
        rows.append(kmeanspp_case(200_000 // scale, 50, 20, repeat, args.device))
        for n, bins in [(1750, False), (1750, True), (3000, False), (3000, True),
                        (20_000, True)] + ([(20_000, False)] if args.full else []):
            n //= scale
            how = "bin seeding" if bins else "every point a seed"
            rows.append(meanshift_case(f"MeanShift flat, 7 blobs {n:,}x2, {how}",
                                       seven_blobs(n, seed=1 if n >= 20_000 // scale else 0),
                                       2.5, bins, 1, args.device))
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'sklearn s':>9}  {'probmix s':>9}  {'sk/pm':>6}  agreement")
    for label, t_sk, t_pm, agree in rows:
        print(f"{label:<{width}}  {t_sk:9.3f}  {t_pm:9.3f}  {t_sk / t_pm:6.2f}  {agree}")
    if not args.quick:
        write_table("bench_baselines", "KMeans and MeanShift: probmix vs scikit-learn", head,
                    ["case", "sklearn s", "probmix s", "sklearn/probmix", "agreement"],
                    [[label, f"{t_sk:.3f}", f"{t_pm:.3f}", f"{t_sk / t_pm:.2f}", agree]
                     for label, t_sk, t_pm, agree in rows])


if __name__ == "__main__":
    main()
