"""Variational inference: probmix SVI (full batch, mini-batch) and CAVI vs scikit-learn.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_vi.py [--quick] [--large-threads N]

What is compared
----------------
For each data set, in one run and on the same training rows:

* ``sklearn BGMM``: scikit-learn's ``BayesianGaussianMixture(n_components=K,
  covariance_type="full", weight_concentration_prior_type="dirichlet_distribution",
  weight_concentration_prior=1.0, max_iter=1000, tol=1e-3, random_state=0)`` (its own
  k-means start, its own default Normal-Wishart prior) -- the reference;
* ``probmix EM/MAP``: ``probmix.fit(model, x, engine="map")``, the start of both variational
  engines, listed so that its share of their time is visible;
* ``probmix CAVI``: ``probmix.fit(model, x, engine="svi", method="cavi")`` (closed-form
  coordinate ascent, default ``tol``);
* ``probmix SVI full``: ``probmix.fit(model, x, engine="svi", progress=False, steps=S)``
  (Pyro SVI, TraceEnum_ELBO, diagonal-Normal autoguide, ``lr=0.01``, all rows every step);
* ``probmix SVI mini-batch``: the same with ``batch_size=B`` (512 for 3k rows, 2048 otherwise).

``model = probmix.GaussianMixture(K)`` (full covariance, default prior) throughout.

Data sets
---------
* ``3k x 2, K=3``: ``probmix.three_clusters(1000, seed=0)`` (x and its true labels); the
  held-out set is an independent draw from the same distribution,
  ``probmix.three_clusters(1000, seed=1)``.
* ``100k x 10, K=10`` (``--quick``: ``20k x 10, K=10``): well-separated Gaussian clusters
  from ``numpy.random.default_rng(0)``: weights ~ Dirichlet(5, ..., 5), means ~ N(0, 6² I)
  (smallest distance between two means about 16), covariances A Aᵀ / D + 0.5 I with A
  standard normal. The last 20% of the rows are held out; everything is fitted on the
  first 80%.

Columns
-------
* ``seconds``: wall-clock time of the whole fit call (for SVI and CAVI it includes their
  EM/MAP start). Fits shorter than 2 seconds are repeated three times and the best time
  kept; untimed warm-up fits run first (sklearn, EM and CAVI on the training rows, a 3-step
  SVI: imports, thread pools, lazy initialisation). ``ratio``: seconds / sklearn's seconds (> 1: slower than scikit-learn).
* ``n_iter``: EM/CAVI/sklearn iterations, or SVI steps; ``conv.``: whether the engine's
  convergence rule was met.
* ``ELBO``: probmix's ``fit.options["elbo"]``, the evidence lower bound of the model, in nats,
  in the units of the data (CAVI: exact, with q(z) mean-field; SVI: z summed out, a
  100-particle Monte Carlo estimate). The CAVI and SVI values bound the same log evidence and
  are comparable with each other. scikit-learn's ``lower_bound_`` is printed too but is NOT
  comparable: it omits constant terms (and uses a different prior).
* ``ARI``: ``sklearn.metrics.adjusted_rand_score(true labels, fit.predict(x))`` on the
  training rows.
* ``held-out lpd``: mean log predictive density of the held-out rows, ``fit.score(x_test)``
  (probmix SVI/CAVI: the posterior predictive averaged over 1000 draws of q; EM: the plug-in
  density at the MAP; scikit-learn: the plug-in density at the variational posterior mean).

Threads
-------
``torch.set_num_threads(1)`` and ``threadpoolctl.threadpool_limits(1)`` for the 3k set (one
thread is faster there on a small problem), 2 of each for the large set (``--large-threads``
changes that; probmix's SVI and CAVI drop to one thread by themselves below N·D·K = 2e6, see
``probmix._threads``, EM does not). The timings are wall-clock on whatever else runs on the
machine: repeat on a quiet machine before quoting; on a 2-vCPU VM whose second core is busy,
two threads can be several times slower than one.
The table is printed and written as markdown to ``benchmarks/results/bench_vi.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import BayesianGaussianMixture
from threadpoolctl import threadpool_limits

import probmix
from _report import write_table
from probmix.exceptions import ConvergenceWarning

SK_MAX_ITER, SK_TOL = 1000, 1e-3
LR = 0.01


def blobs(n, d, k, seed=0):
    """Well-separated Gaussian clusters: (x (n, d), labels (n,))."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(0.0, 6.0, size=(k, d))
    a = rng.standard_normal((k, d, d))
    chol = np.linalg.cholesky(a @ a.transpose(0, 2, 1) / d + 0.5 * np.eye(d))
    labels = rng.choice(k, size=n, p=weights)
    x = means[labels] + np.einsum("nij,nj->ni", chol[labels], rng.standard_normal((n, d)))
    return x, labels


def make_set(name, large_threads=2):
    """(label, x_train, labels_train, x_test, K, torch threads, mini-batch size)."""
    if name == "3k":
        x, labels = probmix.three_clusters(1000, seed=0)
        x_test, _ = probmix.three_clusters(1000, seed=1)
        return "3k x 2, K=3", x, labels, x_test, 3, 1, 512
    n = {"20k": 20_000, "100k": 100_000}[name]
    x, labels = blobs(n, 10, 10, seed=0)
    n_train = int(0.8 * n)
    return (f"{n // 1000}k x 10, K=10", x[:n_train], labels[:n_train], x[n_train:], 10,
            large_threads, 2048)


def timed(fn):
    """(seconds, result): one call, or the best of three when one call takes under 2 seconds."""
    t0 = time.perf_counter()
    out = fn()
    best = time.perf_counter() - t0
    if best < 2.0:
        for _ in range(2):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
    return best, out


def methods(k, batch_size, steps_full, steps_mb):
    """[(name, fit function of x)] in table order."""
    model = probmix.GaussianMixture(k)

    def sk(x):
        return BayesianGaussianMixture(
            n_components=k, covariance_type="full",
            weight_concentration_prior_type="dirichlet_distribution",
            weight_concentration_prior=1.0, max_iter=SK_MAX_ITER, tol=SK_TOL,
            random_state=0).fit(x)

    return [
        ("sklearn BGMM", sk),
        ("probmix EM/MAP", lambda x: probmix.fit(model, x, engine="map", seed=0)),
        ("probmix CAVI", lambda x: probmix.fit(model, x, engine="svi", method="cavi", seed=0)),
        ("probmix SVI full", lambda x: probmix.fit(model, x, engine="svi", steps=steps_full,
                                                   lr=LR, seed=0, progress=False)),
        (f"probmix SVI mini-batch {batch_size}",
         lambda x: probmix.fit(model, x, engine="svi", steps=steps_mb, lr=LR,
                               batch_size=batch_size, seed=0, progress=False)),
    ]


def run_set(name, steps_full, steps_mb, notes, large_threads=2):
    label, x, labels, x_test, k, threads, batch_size = make_set(name, large_threads)
    torch.set_num_threads(threads)
    rows = []
    with threadpool_limits(threads):
        todo = methods(k, min(batch_size, len(x)), steps_full, steps_mb)
        with warnings.catch_warnings():  # warm-up: imports, thread pools, lazy initialisation
            warnings.simplefilter("ignore")
            for mname, f in todo:
                if "SVI" not in mname:
                    f(x)
            probmix.fit(probmix.GaussianMixture(k), x, engine="svi", steps=3, window=1,
                        batch_size=batch_size, progress=False, seed=0)
        t_sk = None
        for mname, f in todo:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                seconds, res = timed(lambda: f(x))
            for w in caught:
                if issubclass(w.category, (ConvergenceWarning, SkConvergenceWarning)):
                    notes.append(f"{label}, {mname}: {str(w.message).splitlines()[0]}")
            ari = adjusted_rand_score(labels, res.predict(x))
            lpd = res.score(x_test)
            if mname.startswith("sklearn"):
                t_sk = seconds
                n_iter, conv = res.n_iter_, res.converged_
                elbo = f"{res.lower_bound_:.6g} (not comparable: omits constants)"
            else:
                n_iter, conv = res.n_iter, res.converged
                value = res.options.get("elbo")
                elbo = "–" if value is None else f"{value:.8g}"
            row = [label, mname, f"{seconds:.3g}", f"{seconds / t_sk:.2f}", str(n_iter),
                   "yes" if conv else "no", elbo, f"{ari:.4f}", f"{lpd:.5f}"]
            rows.append(row)
            print(" | ".join(row), flush=True)
    return rows, threads


def bias_table(precise: bool = False):
    """Print and write the VI bias in posterior sd against NUTS (benchmarks/_vi_bias.py);
    ``precise``: 4 × 10,000 NUTS draws and 40,000 draws per engine."""
    from _vi_bias import compare

    torch.set_num_threads(1)
    sets = {"3k x 2, K=3": (probmix.three_clusters(1000, seed=0)[0], 3),
            "faithful 272 x 2, K=2": (pd.read_csv(os.path.join(
                os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                "faithful.csv")).select_dtypes("number").to_numpy(dtype=float), 2)}
    columns = ["data set", "engine", "seconds", "max |bias| / sd", "sd ratio", "90% coverage"]
    print(" | ".join(columns), flush=True)
    rows = []
    for name, (x, k) in sets.items():
        for row in compare(x, k, **(dict(nuts_samples=10_000, n_draws=40_000) if precise
                                    else {})):
            rows.append([name, *row])
            print(" | ".join(rows[-1]), flush=True)
    write_table("bench_vi_bias", "Variational posteriors against NUTS: bias in posterior sd",
                f"Weights and means; NUTS: 4 chains x (1000 + {10_000 if precise else 1000}), "
                f"seed 0; {40_000 if precise else 4000} draws per engine. See "
                "benchmarks/_vi_bias.py for the columns.", columns, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="20k x 10 instead of 100k x 10, fewer SVI steps")
    parser.add_argument("--large-threads", type=int, default=2,
                        help="torch/BLAS threads for the large set (default 2; the 3k set uses 1)")
    parser.add_argument("--bias", choices=("also", "only", "no"), default="also",
                        help="the bias table against NUTS (benchmarks/_vi_bias.py): also "
                             "(default), only, or no")
    parser.add_argument("--precise", action="store_true",
                        help="the bias table with 4 x 10,000 NUTS draws and 40,000 per engine "
                             "(Monte Carlo noise about 0.01 sd instead of 0.05)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    if args.bias != "no":
        bias_table(args.precise)
    if args.bias == "only":
        return
    big = "20k" if args.quick else "100k"
    # (data set, max SVI steps full batch, max SVI steps mini-batch)
    plan = [("3k", 500 if args.quick else 2000, 500 if args.quick else 2000),
            (big, 300 if args.quick else 2000, 500 if args.quick else 2000)]
    head = (f"torch {torch.__version__}, probmix {probmix.__version__}, {os.cpu_count()} CPUs "
            f"({platform.processor() or platform.machine()}); SVI lr={LR}; sklearn "
            f"max_iter={SK_MAX_ITER}, tol={SK_TOL:g}" + ("; --quick" if args.quick else ""))
    print(head, flush=True)
    columns = ["data set", "method", "seconds", "ratio to sklearn", "n_iter", "conv.", "ELBO",
               "ARI", "held-out lpd"]
    print(" | ".join(columns), flush=True)
    rows, notes, threads = [], [], []
    for name, steps_full, steps_mb in plan:
        r, t = run_set(name, steps_full, steps_mb, notes, args.large_threads)
        rows += r
        threads.append(f"{r[0][0]}: {t} thread{'s' if t > 1 else ''}")

    preamble = (f"{head}. Threads (torch and BLAS): {'; '.join(threads)}. Seconds: wall "
                "clock of the whole fit call (SVI and CAVI include their EM/MAP start); "
                "approximate on a shared machine.")
    write_table("bench_vi", "Variational inference: probmix SVI and CAVI vs scikit-learn "
                "BayesianGaussianMixture", preamble, columns, rows, notes)


if __name__ == "__main__":
    main()
