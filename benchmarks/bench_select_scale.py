"""probmix.select on larger data: the compiled grid (probmix/infer/map/em_grid.py) against
one EM fit at a time (the torch loop, or the kernel for the small ones), in one run.

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/bench_select_scale.py [--quick]

Methodology
-----------
* Data: K = 4 Gaussian clusters (unit covariance, centres drawn with sd 4) in D dimensions,
  N rows, seed 0; the sizes below (``--quick``: the first two).
* Both paths run ``select(x, range(1, K_max + 1))`` with every default (mclust's 14 models,
  screening); the per-fit path is what select did before the grid (``em_grid.applies``
  patched to False). Both use every core (torch's default thread count). Past 20,000 rows
  select uses the grid only while N · D (D + 3) / 2 <= 1e6 (``em_grid.serves``): the last
  row is one it leaves to the per-fit path (both columns then time that path).
* Reported: seconds, the ratio, and whether both picked the same (covariance, K) with the
  same BIC (to 1e-6 relative).
* ``--mclust`` (needs Rscript with mclust; a developer machine, never CI) adds R's
  ``Mclust(X)`` with the same K (its defaults: hc on a subset of 2,000 rows, then EM on all)
  and probmix from mclust's own start alone (``init="mclust"``, one start per fit instead of
  the default's seven), each timed in the same run, with the ratios mclust / probmix.

The table is printed and written as markdown to benchmarks/results/bench_select_scale.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import sys
import time
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _report import write_table  # noqa: E402

SIZES = ((3_000, 2, 9), (10_000, 2, 9), (20_000, 3, 9), (8_000, 10, 6), (4_000, 20, 6),
         (20_000, 12, 4), (50_000, 2, 9), (200_000, 2, 6), (100_000, 5, 6))


def data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(4, d))
    return centers[rng.integers(4, size=n)] + rng.normal(size=(n, d))


def timed(x, k_max: int, grid: bool, **options):
    import probmix
    from probmix.infer.map import em_grid

    real = em_grid.applies
    if not grid:
        em_grid.applies = lambda *args, **kwargs: False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            sel = probmix.select(x, range(1, k_max + 1), **options)
            return time.perf_counter() - start, sel
    finally:
        em_grid.applies = real


def main(argv=None) -> int:
    import probmix
    from probmix.infer.map import em_compiled

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mclust", action="store_true", help="also time R's Mclust(X) and "
                        "select(init='mclust')")
    args = parser.parse_args(argv)
    if args.mclust and shutil.which("Rscript") is None:
        parser.error("--mclust needs Rscript with the mclust package")
    from _mclust import run_mclust
    em_compiled.compile_kernel()  # once per installation; not timed
    rows = []
    for n, d, k_max in SIZES[:2] if args.quick else SIZES:
        x = data(n, d)
        t_grid, grid = timed(x, k_max, True)
        t_each, each = timed(x, k_max, False)
        same = (grid.best_covariance, grid.best) == (each.best_covariance, each.best) and \
            abs(grid.table["bic"].min() - each.table["bic"].min()) <= \
            1e-6 * abs(each.table["bic"].min())
        rows.append([f"{n:,}×{d}", f"1..{k_max}", f"{t_grid:.2f}", f"{t_each:.2f}",
                     f"{t_each / t_grid:.1f}", f"{grid.best_covariance},{grid.best}",
                     "yes" if same else "NO"])
        if args.mclust:
            t_alone, alone = timed(x, k_max, True, init="mclust")
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "x.csv")
                names = [f"x{j}" for j in range(d)]
                np.savetxt(path, x, delimiter=",", header=",".join(names), comments="")
                m = run_mclust(path, names, ks=range(1, k_max + 1))
            rows[-1] += [f"{t_alone:.2f}", f"{alone.best_covariance},{alone.best}",
                         f"{m['elapsed']:.2f}", f"{m['model']},{m['k']}",
                         f"{-float(grid.table['bic'].min()) - m['bic']:+.2f}",
                         f"{m['elapsed'] / t_grid:.1f}", f"{m['elapsed'] / t_alone:.1f}"]
        print(" | ".join(rows[-1]), flush=True)
    preamble = (
        "`probmix.select(x, range(1, K_max + 1))` with every default (14 models), the compiled "
        "grid (lazy screening, fits in parallel threads) against one EM fit at a time (what "
        "select ran before the grid). Data: 4 unit-covariance clusters, seed 0. "
        f"torch threads: {torch.get_num_threads()}. probmix {probmix.__version__}.")
    columns = ["N×D", "K", "grid s", "per-fit s", "speed-up", "pick", "same pick and BIC"]
    if args.mclust:
        preamble += (" With --mclust: R's Mclust(X) with the same K, timed in the same run "
                     "(Δ BIC: probmix's default pick minus mclust's, in mclust's sign, >= 0 is "
                     "as good or better), and select(init=\"mclust\"), mclust's own start alone.")
        columns += ["init=mclust s", "init=mclust pick", "mclust s", "mclust pick", "Δ BIC",
                    "mclust / grid", "mclust / init=mclust"]
    write_table("bench_select_scale", "select: the compiled grid vs one fit at a time",
                preamble, columns, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
