"""MCMC efficiency: effective samples per second of the component means, probmix and others.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_mcmc.py [--quick] [--threads N] [--sets walk,faithful,iris]

What is compared
----------------
The same model (``probmix.GaussianMixture(K)``: full covariances, the default conjugate
prior resolved on the data) on three data sets, 4 chains x (1000 warm-up + 1000 draws),
``seed=0`` (``--quick``: 2 chains x (300 + 300)):

* ``NUTS batched``: ``probmix.fit(model, x, engine="mcmc", backend="batched")``, the
  default for this model: chains in pairs, the pairs in parallel processes, dense mass
  matrix; on float64 CPU data the compiled sampler (``probmix.infer.mcmc.nuts_fused``: the
  closed-form potential and the NUTS transition in numba; its compile, once per install, is
  cached and not counted: the first fit of a run loads it);
* ``NUTS torch`` (kind ``torch``): the same with ``PROBMIX_FUSED=0``: the batched torch
  sampler, one batched closed-form potential per leapfrog step
  (``probmix.infer.mcmc.nuts_batched``);
* ``NUTS pyro``: ``backend="pyro"``: Pyro's NUTS kernel, one chain per worker process,
  diagonal mass (what probmix ran before the batched sampler);
* ``Gibbs``: ``method="gibbs"``, the closed-form blocked Gibbs sampler;
* ``numpyro``, ``pymc``, ``nutpie``: the same model and prior (read from probmix's resolved
  prior, z summed out) in NumPyro (its Wishart, ``chain_method="sequential"``), PyMC and
  nutpie (the PyMC model compiled; Λ_k by the Bartlett decomposition, the same prior), run
  by ``--reference-python`` (a separate venv: ``pip install pymc nutpie numpyro
  "jax[cpu]"``) through benchmarks/_reference_samplers.py (PyMC and nutpie on every core, as the
  batched NUTS; NumPyro in sequence); skipped with a
  line without it. nutpie's compile time is reported in the notes, not counted.

Data sets: ``walk``: ``probmix.three_clusters(1000, seed=0)`` (3k x 2, K = 3); ``faithful``:
``tests/data/faithful.csv`` (272 x 2, K = 2); ``iris``: ``tests/data/iris.csv``'s four
measurements (150 x 4, K = 3).

Columns
-------
* ``sampling s``: the sampling loop alone (warm-up + draws; ``fit.options["seconds"]`` for
  NUTS, the whole fit call for Gibbs, which includes its EM start).
* ``min ESS``: the smallest bulk ESS (``arviz_stats.ess``) over the mean coordinates;
  ``ESS/s`` = min ESS / sampling s.
* ``max r_hat``: the largest rank-normalised split r_hat over the same coordinates.
* ``divergences``: divergent transitions after warm-up.

Threads: ``torch.set_num_threads(--threads)`` (default 1). Timings are wall clock on
whatever else runs on the machine: repeat on a quiet machine before quoting. The table is
printed and written as markdown to ``benchmarks/results/bench_mcmc.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import arviz_stats
import numpy as np
import torch

import probmix
from _report import write_table

HERE = os.path.dirname(os.path.abspath(__file__))


def _csv(name):
    import pandas as pd

    return pd.read_csv(os.path.join(HERE, "..", "tests", "data", name)) \
        .select_dtypes("number").to_numpy(dtype=np.float64)


SETS = {"walk": ("3k x 2, K=3", lambda: probmix.three_clusters(1000, seed=0)[0], 3),
        "faithful": ("faithful 272 x 2, K=2", lambda: _csv("faithful.csv"), 2),
        "iris": ("iris 150 x 4, K=3", lambda: _csv("iris.csv"), 3)}


def _values(result, name="means"):
    """The numbers of one variable of an arviz_stats result as a 1-D array."""
    for getter in (lambda r: r["posterior"][name], lambda r: r[name]):
        try:
            return np.asarray(getter(result).values, dtype=float).ravel()
        except (KeyError, TypeError, AttributeError):
            continue
    return np.asarray(result, dtype=float).ravel()


def run_probmix(x, k, kind, num_samples, warmup, chains):
    """(sampling seconds, means draws (C, S, K, D), divergences, warnings) of one probmix fit."""
    opts = dict(engine="mcmc", num_samples=num_samples, num_warmup=warmup, num_chains=chains,
                seed=0, progress=False)
    if kind == "gibbs":
        opts["method"] = "gibbs"
    else:
        opts["backend"] = "batched" if kind == "torch" else kind
    switch = os.environ.get("PROBMIX_FUSED")
    if kind == "torch":  # the batched torch sampler, the compiled one switched off
        os.environ["PROBMIX_FUSED"] = "0"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            fit = probmix.fit(probmix.GaussianMixture(k), x, **opts)
            total = time.perf_counter() - t0
    finally:
        if switch is None:
            os.environ.pop("PROBMIX_FUSED", None)
        else:
            os.environ["PROBMIX_FUSED"] = switch
    seconds = fit.options.get("seconds", total)
    div = fit.sample_stats.get("diverging")
    messages = sorted({str(w.message).splitlines()[0][:90] for w in caught
                       if not issubclass(w.category, (DeprecationWarning, FutureWarning))})
    return seconds, fit.draws["means"], None if div is None else int(np.sum(div)), messages


def run_reference(python, x, k, sampler, num_samples, warmup, chains):
    """(sampling seconds, relabelled means draws, divergences, notes) of NumPyro, PyMC or
    nutpie on the same model and prior, run by ``python`` (another environment) through
    benchmarks/_reference_samplers.py; None when ``python`` is not given or cannot run it."""
    if not python:
        return None
    import subprocess
    import tempfile

    from probmix.results.relabel import relabel_draws

    prior = probmix.GaussianMixture(k).resolve_prior(torch.as_tensor(x))
    with tempfile.TemporaryDirectory() as tmp:
        source, target = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(source, x=x, k=k, alpha=np.asarray(prior.alpha, dtype=np.float64),
                 m0=np.asarray(prior.mean_loc, dtype=np.float64),
                 beta=float(prior.mean_precision), nu=float(prior.dof),
                 psi=np.asarray(prior.scale, dtype=np.float64), num_samples=num_samples,
                 warmup=warmup, chains=chains)
        run = subprocess.run([python, os.path.join(HERE, "_reference_samplers.py"), source,
                              target, sampler], capture_output=True, text=True)
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{sampler}: skipped ({last[:120]})", flush=True)
            return None
        out = np.load(target)
        means, seconds = out["means"], float(out["seconds"])
        compile_seconds, div = float(out["compile_seconds"]), int(out["divergences"])
    # relabel with probmix's relabelling, on means, to the EM solution's order
    ref = probmix.fit(probmix.GaussianMixture(k), x, seed=0).means
    means = relabel_draws({"means": means}, ref, {"means": -2}, signature="means")[0]["means"]
    notes = [f"compile {compile_seconds:.1f} s, not counted"] if compile_seconds else []
    return seconds, means, div, notes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 chains x (300 + 300)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--sets", default="walk,faithful,iris")
    parser.add_argument("--kinds", default="batched,pyro,gibbs,numpyro,pymc,nutpie")
    parser.add_argument("--reference-python", default=os.environ.get("PROBMIX_REFERENCE_PYTHON"),
                        help="a Python with numpyro/jax, pymc and nutpie (another venv) for the "
                        "reference samplers; without it they are skipped")
    args = parser.parse_args()
    num_samples = warmup = 300 if args.quick else 1000
    chains = 2 if args.quick else 4
    torch.set_num_threads(args.threads)
    head = (f"torch {torch.__version__}, probmix {probmix.__version__}, {os.cpu_count()} CPUs "
            f"({platform.processor() or platform.machine()}), {args.threads} torch threads; "
            f"num_samples={num_samples}, num_warmup={warmup}, num_chains={chains}")
    print(head, flush=True)
    columns = ["data set", "sampler", "sampling s", "min ESS", "ESS/s", "max r_hat",
               "divergences"]
    print(" | ".join(columns), flush=True)
    rows, notes = [], []
    for key in args.sets.split(","):
        name, load, k = SETS[key]
        x = load()
        for kind in args.kinds.split(","):
            if kind in ("numpyro", "pymc", "nutpie"):
                out = run_reference(args.reference_python, x, k, kind, num_samples, warmup,
                                    chains)
                if out is None:
                    print(f"{name} | {kind}: skipped (no --reference-python with it)",
                          flush=True)
                    continue
            else:
                out = run_probmix(x, k, kind, num_samples, warmup, chains)
            seconds, means, div, messages = out
            notes += [f"{name}, {kind}: {m}" for m in messages]
            import arviz_base

            tree = arviz_base.from_dict({"posterior": {"means": means}})
            ess = _values(arviz_stats.ess(tree, var_names=["means"]))
            rhat = _values(arviz_stats.rhat(tree, var_names=["means"]))
            label = {"batched": "NUTS batched", "torch": "NUTS torch",
                     "pyro": "NUTS pyro"}.get(kind, kind)
            row = [name, label, f"{seconds:.3g}", f"{ess.min():.0f}",
                   f"{ess.min() / seconds:.3g}", f"{rhat.max():.4f}",
                   "–" if div is None else str(div)]
            rows.append(row)
            print(" | ".join(row), flush=True)
    preamble = (f"{head}" + (" (--quick)" if args.quick else "") + ". Sampling seconds, wall "
                "clock; approximate on a shared machine. ESS: bulk, over the mean coordinates.")
    write_table("bench_mcmc", "MCMC: ESS per second of the component means", preamble,
                columns, rows, notes)


if __name__ == "__main__":
    main()
