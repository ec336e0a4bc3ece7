"""Time probmix's closed-form EM per iteration against scikit-learn's GaussianMixture.

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/bench_em.py [--quick] [--threads N] [--sets 3k,100k,...]

Methodology
-----------
* Data: Gaussian blobs (``sklearn.datasets.make_blobs``, seed 0), float64.
* Both libraries start from the same parameters: uniform weights, K distinct random rows as
  means, and the covariance (full) or variances (diag) of the whole data set for every
  component. probmix gets them as ``init={...}``; scikit-learn as ``weights_init``,
  ``means_init`` and ``precisions_init`` (the inverse covariances), with
  ``init_params="random_from_data"`` so that it does not run a k-means that would be
  overwritten anyway. Both use ``prior="flat"`` / maximum likelihood, ``reg_covar=1e-6``,
  ``tol=0`` and a fixed ``max_iter``.
* What is timed: the wall-clock time of a whole ``fit`` call with ``max_iter=T1`` and with
  ``max_iter=T2 = T1 + n``; the time per iteration (one E-step and one M-step) is
  ``(t(T2) - t(T1)) / n``, so that input checks, initialisation and the final E-step cancel.
  Each of t(T1), t(T2) is the best of a few repeats.
* Agreement: the relative difference of the final mean log-likelihoods (``score(X)``) after
  T2 iterations; identical arithmetic up to rounding gives about 1e-12.
* Threads: ``torch.set_num_threads(N)`` for probmix and the bound measurements, and
  ``threadpoolctl.threadpool_limits(N)`` for scikit-learn's BLAS.

Hardware bound ("roofline")
---------------------------
Measured in the same run: the float64 matmul rate R (``torch.mm`` of 2048x2048, FLOP/s) and
the memory bandwidth B (``torch.add(a, b, out=c)`` on preallocated 200 MB float64 arrays,
bytes read + written per second). For one EM iteration on N rows, D features, K components,
with Q = D(D+1)/2 second-order terms (full) or Q = D (diag):

* flops = 2 * 2*N*K*(Q + D): the E-step evaluates for every (row, component) pair a quadratic
  form (Q multiply-adds) plus a linear term (D multiply-adds); the M-step accumulates the same
  number of responsibility-weighted products (scatter matrices and means). Exponentials,
  logarithms and the O(K D^3) per-component work are not counted.
* bytes (minimum) = 8*N*D: X must be read once per iteration.
* bytes (realistic) = 8*N*(2D + 2K): X read by the E-step and again by the M-step, and the
  N x K responsibilities written by the E-step and read by the M-step.

bound = max(flops / R, bytes / B) with the minimum bytes; "real bound" uses the realistic
bytes. probmix/bound is how far probmix is from this lower bound (1 = at the bound).

"GEMM floor" is measured, not modelled: the time of the two matrix products every EM
iteration must make (E-step W Φ, M-step resp Φᵀ) on probmix's own feature chunks, run
alone. Skinny products (K = 5..20 rows) reach a fraction of the 2048² rate R, so this is
the realistic floor; sklearn/floor is the largest speed-up over scikit-learn that any
implementation making these float64 BLAS calls could show on this machine.
The table is printed and written as markdown to benchmarks/results/bench_em.md.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from _report import write_table
from threadpoolctl import threadpool_limits

from probmix.model.covariance import get_family
from probmix.infer.map.em_steps import PreparedData
from probmix.exceptions import ConvergenceWarning
from probmix.infer.dispatch import fit
from probmix.model.gaussian_mixture import GaussianMixture

# name: (N, D, K, T1, n extra iterations, repeats)
SETS = {
    "3k": (3_000, 2, 3, 2, 20, 5),
    "20k": (20_000, 10, 5, 2, 5, 3),
    "100k": (100_000, 10, 10, 2, 10, 7),   # best of many: this 2-core VM's timings vary ±30%
    "1M": (1_000_000, 2, 5, 2, 8, 5),
    "200k50": (200_000, 50, 20, 1, 4, 3),
}
FULL_SETS = ["3k", "100k", "1M", "200k50"]
QUICK_SETS = ["3k", "20k"]
COVARIANCES = ["full", "diag"]


def best_time(f, repeats):
    """Best wall-clock seconds of ``repeats`` calls of ``f()``, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def machine_rates():
    """(float64 matmul FLOP/s, memory bandwidth bytes/s) with the current torch threads."""
    a = torch.randn(2048, 2048, dtype=torch.float64)
    b = torch.randn(2048, 2048, dtype=torch.float64)
    c = torch.empty_like(a)
    torch.mm(a, b, out=c)  # warm-up
    t, _ = best_time(lambda: torch.mm(a, b, out=c), 3)
    rate = 2 * 2048**3 / t
    n = 200_000_000 // 8  # 200 MB per array
    a, b = torch.ones(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    c = torch.zeros(n, dtype=torch.float64)  # written once: pages are mapped before timing
    torch.add(a, b, out=c)
    t, _ = best_time(lambda: torch.add(a, b, out=c), 5)
    return rate, 3 * 8 * n / t


def make_data(n, d, k):
    x, _ = make_blobs(n_samples=n, n_features=d, centers=k, random_state=0)
    rng = np.random.default_rng(0)
    w0 = np.full(k, 1.0 / k)
    m0 = x[rng.choice(n, size=k, replace=False)]
    return x, w0, m0


def initial_covariances(x, k, cov):
    if cov == "full":
        return np.repeat(np.cov(x, rowvar=False)[None], k, axis=0)
    return np.repeat(x.var(axis=0)[None], k, axis=0)


def run_probmix(x, k, cov, w0, m0, c0, t):
    model = GaussianMixture(k, covariance=cov, prior="flat")
    return fit(model, x, init={"weights": w0, "means": m0, "covariances": c0},
               max_iter=t, tol=0.0)


def run_sklearn(x, k, cov, w0, m0, c0, t):
    prec = np.linalg.inv(c0) if cov == "full" else 1.0 / c0
    gm = SkGaussianMixture(k, covariance_type=cov, weights_init=w0, means_init=m0,
                           precisions_init=prec, init_params="random_from_data",
                           max_iter=t, tol=0.0, random_state=0)
    return gm.fit(x)


def per_iteration(run, t1, n, repeats):
    """((t(T1+n) - t(T1)) / n, fit after T1+n iterations)."""
    time1, _ = best_time(lambda: run(t1), repeats)
    time2, model = best_time(lambda: run(t1 + n), repeats)
    return (time2 - time1) / n, model


def gemm_floor(x, k, cov, repeats):
    """Seconds per iteration of the two matrix products EM cannot avoid, and nothing else.

    The E-step's W Φ (K x F by F x n) and the M-step's resp Φᵀ (K x n by n x F), on
    probmix's own cached feature chunks Φ: what an implementation that does only these
    BLAS calls, with no exponentials, reductions or bookkeeping, would take here.
    """
    data = PreparedData(torch.as_tensor(x), get_family(cov))
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(k, data.n_phi, dtype=torch.float64, generator=gen)
    s = torch.zeros(k, data.n_phi, dtype=torch.float64)

    def products():
        for _, phi, _ in data.chunks():
            s.addmm_(torch.mm(w, phi), phi.T)

    products()
    return best_time(products, repeats)[0]


def em_cost(n, d, k, cov):
    """(flops, minimum bytes, realistic bytes) of one EM iteration."""
    q = d * (d + 1) // 2 if cov == "full" else d
    flops = 2 * 2 * n * k * (q + d)
    return flops, 8 * n * d, 8 * n * (2 * d + 2 * k)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sets only: 3k, 20k")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sets", help=f"comma-separated names among {', '.join(SETS)}")
    args = parser.parse_args()
    names = args.sets.split(",") if args.sets else QUICK_SETS if args.quick else FULL_SETS
    unknown = [s for s in names if s not in SETS]
    if unknown:
        parser.error(f"unknown sets {unknown}; choose among {list(SETS)}")

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", SkConvergenceWarning)
    rate, bandwidth = machine_rates()
    head = (f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs: "
            f"float64 matmul {rate / 1e9:.1f} GFLOP/s, memory bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(head, flush=True)

    columns = ["data set", "covariance", "sklearn s/iter", "probmix s/iter",
               "sklearn/probmix", "bound s/iter", "probmix/bound", "real bound s/iter",
               "GEMM floor s/iter", "sklearn/floor", "loglik rel diff"]
    rows = []
    print("  ".join(f"{c:>17}" for c in columns), flush=True)
    for name in names:
        n, d, k, t1, extra, repeats = SETS[name]
        x, w0, m0 = make_data(n, d, k)
        for cov in COVARIANCES:
            c0 = initial_covariances(x, k, cov)
            with threadpool_limits(args.threads):
                t_sk, sk = per_iteration(lambda t: run_sklearn(x, k, cov, w0, m0, c0, t),
                                         t1, extra, repeats)
            t_pm, pm = per_iteration(lambda t: run_probmix(x, k, cov, w0, m0, c0, t),
                                     t1, extra, repeats)
            ll_sk, ll_pm = sk.score(x), pm.score(x)
            floor = gemm_floor(x, k, cov, repeats)
            flops, bytes_min, bytes_real = em_cost(n, d, k, cov)
            bound = max(flops / rate, bytes_min / bandwidth)
            real_bound = max(flops / rate, bytes_real / bandwidth)
            row = [f"{n // 1000}k x {d}, K={k}" if n < 10**6 else f"{n // 10**6}M x {d}, K={k}",
                   cov, f"{t_sk:.3g}", f"{t_pm:.3g}", f"{t_sk / t_pm:.2f}", f"{bound:.2g}",
                   f"{t_pm / bound:.1f}", f"{real_bound:.2g}", f"{floor:.3g}",
                   f"{t_sk / floor:.2f}", f"{abs(ll_pm - ll_sk) / abs(ll_sk):.1e}"]
            rows.append(row)
            print("  ".join(f"{c:>17}" for c in row), flush=True)

    write_table("bench_em", "EM per iteration: probmix vs scikit-learn", head, columns, rows)


if __name__ == "__main__":
    main()
