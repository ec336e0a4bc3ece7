"""probmix.select's full search against R's Mclust(X) on five public data sets.

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/bench_select.py [--sets faithful,iris] [--repeats 1]

Methodology
-----------
* Data: the CSVs of tests/data (faithful, iris, wine, banknote, diabetes), the numeric
  columns listed in tests/data/mclust_reference.json; the known class (where there is one)
  only scores the result (adjusted Rand index, ARI).
* probmix: ``select(x, range(1, 10), covariance="all", criterion="bic")`` (14 families ×
  K = 1..9, 126 EM fits, maximum likelihood), with mclust's start and stopping rule
  (``init="auto"``: the hierarchical tree plus k-means++ starts; ``stop="aitken"``) and
  ``max_iter=1000`` (mclust iterates until its tolerance). The hierarchical tree is built once
  per data set and shared by every fit (as mclust does).
* mclust: ``Mclust(X)`` with all defaults (the same 14 models × G = 1..9, its own hc start),
  run through ``Rscript`` in the same session (benchmarks/_mclust.run_mclust) and timed by R's
  ``system.time``. Without Rscript, the times, picks and BICs stored in the JSON (another
  machine, another day) are printed instead, and the table says so.
* Both BICs are in mclust's sign (2 log L - p log N, higher is better); probmix's own sign is
  the opposite.
* mclust's own start: probmix is also timed with ``init="mclust"`` (one start per fit, the
  VVV tree's partition, as mclust's; one thread), the same work as mclust's search but EM
  run to probmix's stopping rule: how fast the engine is at mclust's job, and what the
  default's extra starts cost and buy (its pick and BIC).
* Threads: probmix is timed twice, with ``torch.set_num_threads(1)`` (mclust runs Fortran
  on one thread) and with every core (``os.cpu_count()`` threads: select runs that many
  fits at once, what a user gets by default). Times are wall clock, the median of
  ``--repeats`` runs, each including the first fit's warm-up.

The table is printed and written as markdown to benchmarks/results/bench_select.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import time
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _mclust import run_mclust  # noqa: E402
from _report import write_table  # noqa: E402

SETS = ("faithful", "iris", "wine", "banknote", "diabetes")
EM = dict(init="auto", stop="aitken", max_iter=1000)


def adjusted_rand_index(a, b) -> float:
    """Hubert & Arabie's adjusted Rand index of two labelings (1: identical partitions)."""
    _, a = np.unique(np.asarray(a), return_inverse=True)
    _, b = np.unique(np.asarray(b), return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)

    def pairs(v):
        return float((v * (v - 1) / 2).sum())

    total = pairs(np.array([len(a)]))
    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / total
    top = (rows + cols) / 2
    return 1.0 if top == expected else (index - expected) / (top - expected)


def load(name: str, entry: dict):
    with open(os.path.join(ROOT, "tests", "data", f"{name}.csv")) as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in entry["columns"]] for r in rows])
    cls = [r["class"] for r in rows] if entry.get("class_column") else None  # README: "class"
    return x, cls


def timed_select(x, repeats: int, screen: bool, **options):
    """(median seconds over ``repeats`` runs, the last Selection, the warnings of the last
    run) of the full search (14 models × K = 1..9) with ``options``."""
    import probmix

    times = []
    for _ in range(max(1, repeats)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            sel = probmix.select(x, range(1, 10), covariance="all", criterion="bic",
                                 screen=screen, **options)
            times.append(time.perf_counter() - start)
    return statistics.median(times), sel, caught


def main(argv=None) -> int:
    import probmix

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-screen", dest="screen", action="store_false",
                        help="run every fit to the full stopping rule (select(screen=False))")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    torch.set_num_threads(1)
    reference = json.loads(open(os.path.join(ROOT, "tests", "data",
                                             "mclust_reference.json")).read())
    live = shutil.which("Rscript") is not None
    print(f"probmix timed with one thread (as mclust's Fortran) and with {cores} (every core)")
    print("mclust: " + ("Mclust(X) timed now through Rscript" if live else
                        "Rscript not found: mclust's picks, BICs and times are the stored ones "
                        "from tests/data/mclust_reference.json (another machine)"))
    rows, notes = [], []
    for name in args.sets.split(","):
        entry = reference["datasets"][name]
        x, cls = load(name, entry)
        timed = {}
        for threads in (1, cores):
            torch.set_num_threads(threads)
            timed[threads], sel, caught = timed_select(x, args.repeats, args.screen, **EM)
        torch.set_num_threads(1)
        t_probmix, t_cores = timed[1], timed[cores]
        # mclust's own start alone, one thread
        t_alone, alone, _ = timed_select(x, args.repeats, args.screen, **{**EM, "init": "mclust"})
        failed = int(sel.table["bic"].isna().sum())
        if caught:
            notes.append(f"{name}: {len(caught)} warnings inside the fits, e.g. "
                         f"{str(caught[0].message)[:160]}")
        if live:
            m = run_mclust(os.path.join(ROOT, "tests", "data", f"{name}.csv"), entry["columns"],
                           repeats=max(1, args.repeats))
            m_model, m_k, m_bic, t_mclust = m["model"], m["k"], m["bic"], m["elapsed"]
            m_labels = m["classification"]
        else:
            d = entry["default"]
            m_model, m_k, m_bic, t_mclust = d["model"], d["k"], d["bic"], d["time_s"]
            m_labels = d["classification"]
        p_bic = -float(sel.table["bic"].min())  # mclust's sign
        p_labels = sel.best_fit.predict(x)
        ari = ("-", "-") if cls is None else (f"{adjusted_rand_index(p_labels, cls):.3f}",
                                              f"{adjusted_rand_index(m_labels, cls):.3f}")
        rows.append([name, f"{len(x)}×{x.shape[1]}", f"{sel.best_covariance},{sel.best}",
                     f"{m_model},{m_k}", f"{p_bic:.3f}", f"{m_bic:.3f}", f"{p_bic - m_bic:+.3f}",
                     f"{t_probmix:.2f}", f"{t_cores:.2f}", f"{t_mclust:.2f}",
                     f"{t_mclust / t_probmix:.2f}", f"{t_mclust / t_cores:.2f}",
                     ari[0], ari[1], f"{failed}/126",
                     f"{int(sel.table['refined'].sum())}/126",
                     f"{alone.best_covariance},{alone.best}",
                     f"{-float(alone.table['bic'].min()) - m_bic:+.3f}", f"{t_alone:.2f}",
                     f"{t_mclust / t_alone:.2f}"])
        print(" | ".join(rows[-1]), flush=True)
    columns = ["data", "N×D", "probmix pick", "mclust pick", "probmix BIC", "mclust BIC",
               "Δ BIC", "probmix s (1 thread)", f"probmix s ({cores} threads)", "mclust s",
               "speed-up (1 thread)", f"speed-up ({cores} threads)", "probmix ARI", "mclust ARI",
               "NaN fits", "refined", "init=mclust pick", "init=mclust Δ BIC",
               "init=mclust s (1 thread)", "init=mclust speed-up"]
    preamble = (
        "`probmix.select(x, range(1, 10), covariance=\"all\", criterion=\"bic\", init=\"auto\", "
        "stop=\"aitken\", max_iter=1000" + ("" if args.screen else ", screen=False")
        + ")` (14 families × K = 1..9, maximum likelihood) against "
        "R's `Mclust(X)` (the same search, all defaults). BIC in mclust's sign (2 log L - p log "
        "N, higher is better); Δ BIC = probmix - mclust (≥ 0: probmix's pick is at least as "
        "good). ARI: adjusted Rand index of the pick's classification against the known class. "
        "NaN fits: (family, K) that probmix records as failed (a degenerate covariance, or a "
        "component held up by the reg_covar ridge alone). Refined: fits continued to the full "
        "stopping rule after screening (the others are more than 30 BIC units from the best; "
        "see select's screen). init=mclust: the same search from mclust's own start alone "
        "(one VVV-tree partition per fit, as mclust; one thread). Speed-up: mclust's time / probmix's (> 1: probmix is faster), "
        f"probmix with one torch thread and with {cores} (select runs that many fits at once). "
        "mclust "
        + ("timed in the same run through Rscript." if live else
           "NOT run: its times are the stored ones from tests/data/mclust_reference.json "
           "(another machine).")
        + (f" probmix {probmix.__version__}." if hasattr(probmix, "__version__") else ""))
    write_table("bench_select", "probmix.select vs mclust's Mclust(X)", preamble, columns, rows,
                notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
