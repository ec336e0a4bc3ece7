"""Choosing the number of components: BIC vs PSIS-LOO vs a Dirichlet-process prior.

Data with a known answer: four Gaussian clusters (K = 4) in 2-D, 400 points (240 with --fast). Three ways to
choose K over K = 1..8:

- BIC from MAP fits: -2 log-likelihood + (number of parameters) log N; lower is better.
  A penalty per parameter, so it picks the smallest K that explains the data.
- PSIS-LOO from posterior draws (Gibbs): the expected log density of a new point,
  estimated by leave-one-out cross-validation; higher is better. Extra components that
  get almost no weight barely change predictions, so LOO is flat beyond the true K: take
  the smallest K within one standard error of the best.
- One fit with K = 8 and a truncated Dirichlet-process (stick-breaking) prior on the
  weights: the posterior leaves the components it does not need (nearly) empty. Its
  answer is a posterior over the number of occupied components.

Run: python examples/choosing_k.py [--fast] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display needed

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import probmix  # noqa: E402
from probmix import plot  # noqa: E402
from probmix.results.diagnostics import ConvergenceDiagnosticWarning  # noqa: E402

NAME = "choosing_k"
TRUTH = {"weights": [0.3, 0.25, 0.25, 0.2],
         "means": [[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]],
         "covariances": [[[1.0, 0.0], [0.0, 1.0]]] * 4}
TRUE_K = 4
WEIGHT_FLOOR = 0.05  # a component "counts" when its posterior mean weight is above this


def _out_dir(out, fast: bool) -> Path:
    if out is None:
        out = tempfile.mkdtemp(prefix=f"{NAME}-") if fast else Path("probmix-examples") / NAME
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def one_se_rule(selection) -> int:
    """Smallest K whose elpd is within one standard error of the best K's.

    The standard error is that of the *difference* of elpd to the best K (ArviZ's ``dse``,
    from the paired pointwise values): the elpd's own se includes how hard every point is to
    predict, which all the K share, and lets far worse models through.
    """
    table = probmix.compare_models({str(k): f for k, f in selection.fits.items()},
                                   criterion=selection.criterion)
    within = [int(name) for name in table.index
              if table.loc[name, "elpd_diff"] <= table.loc[name, "dse"]]
    return min(within)


def occupied_components(assignment_draws, n_components: int, *, min_share: float) -> np.ndarray:
    """Per draw, the number of components holding at least ``min_share`` of the points.

    Parameters
    ----------
    assignment_draws : ndarray (chain, draw, N) of int

    Returns
    -------
    ndarray (chain * draw,) of int
    """
    z = assignment_draws.reshape(-1, assignment_draws.shape[-1]).astype(np.int64)   # (S, N)
    counts = np.zeros((z.shape[0], n_components), dtype=np.int64)                  # (S, K)
    np.add.at(counts, (np.arange(z.shape[0])[:, None], z), 1)
    return (counts >= min_share * z.shape[1]).sum(1)


def figure(bic, loo, dp_fits: dict, occupied: np.ndarray):
    """Four panels: BIC vs K, LOO vs K, the DP fits' sorted weights, occupied components."""
    fig = Figure(figsize=(17.0, 4.0), layout="constrained")
    axes = fig.subplots(1, 4)
    plot.criterion(bic, ax=axes[0])
    plot.criterion(loo, ax=axes[1])
    k = np.arange(1, 9)
    for i, (name, f) in enumerate(dp_fits.items()):
        order = np.argsort(f.weights)[::-1]
        sd = f.draws["weights"].reshape(-1, f.n_components).std(0)[order]
        axes[2].bar(k + (i - 0.5) * 0.4, f.weights[order], width=0.4, yerr=sd, capsize=2,
                    label=name)
    axes[2].axhline(WEIGHT_FLOOR, color="0.4", linestyle=":", label=f"{WEIGHT_FLOOR:.0%}")
    axes[2].set_xticks(k)
    axes[2].set_xlabel("component, by weight")
    axes[2].set_ylabel("posterior mean weight (± sd)")
    axes[2].set_title("Dirichlet-process prior, K = 8")
    axes[2].legend()
    values = np.arange(1, 9)
    axes[3].bar(values, [(occupied == v).mean() for v in values], color="C2")
    axes[3].set_xticks(values)
    axes[3].set_xlabel("components holding ≥ 1% of the points")
    axes[3].set_ylabel("posterior probability (Gibbs)")
    axes[3].set_title("DP: how many clusters?")
    fig.suptitle(f"Choosing K on data from {TRUE_K} clusters")
    return fig


def main(*, fast: bool = False, out=None) -> dict:
    """Run the three criteria; returns the Ks they choose and their tables."""
    with warnings.catch_warnings():
        return _main(fast=fast, out=out)


def _main(*, fast: bool, out) -> dict:
    out = _out_dir(out, fast)
    x, z = probmix.GaussianMixture(TRUE_K).sample(240 if fast else 400, seed=0, params=TRUTH)
    ks = range(1, 9)
    seconds = {}

    t0 = time.perf_counter()
    # one covariance family (the model LOO scores below); select(x) alone would also search
    # mclust's 14 covariance models
    bic = probmix.select(x, ks, criterion="bic", covariance="full", prior="default", seed=0)
    seconds["BIC"] = time.perf_counter() - t0
    print(f"BIC (MAP fits, lower is better): best K = {bic.best}")
    print(bic.table.round(1).T.to_string(), "\n")

    # With more components than clusters the surplus ones are (nearly) empty: their means are
    # draws from the prior, so r_hat over them is large by construction, not a failure.
    warnings.filterwarnings("ignore", category=ConvergenceDiagnosticWarning)
    t0 = time.perf_counter()
    # (--fast: K up to 6 only; ArviZ's PSIS smoothing loops over the points in Python)
    loo = probmix.select(x, range(1, 7) if fast else ks, criterion="loo", seed=0,
                         num_samples=100 if fast else 500, num_warmup=100 if fast else 300,
                         num_chains=2)
    seconds["LOO"] = time.perf_counter() - t0
    loo_k = one_se_rule(loo)
    print(f"PSIS-LOO (Gibbs draws, higher is better): best K = {loo.best}; smallest K within "
          f"one standard error of it: {loo_k}")
    print(loo.table.round(2).T.to_string(), "\n")

    # One fit with K = 8 and stick-breaking weights: weights[k] = v_k Π_{j<k} (1 - v_j),
    # v_j ~ Beta(1, γ). γ = 1: each stick takes half of what is left, on average.
    dp = probmix.GaussianMixture(8, weights_prior="dirichlet_process",
                                 prior=probmix.Prior(weight_concentration=1.0))
    t0 = time.perf_counter()
    dp_fits = {"CAVI": probmix.fit(dp, x, engine="svi", method="cavi", seed=0,
                                   num_draws=500)}
    seconds["DP (CAVI)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dp_fits["Gibbs"] = probmix.fit(dp, x, engine="mcmc", method="gibbs", seed=0,
                                   num_samples=200 if fast else 1000,
                                   num_warmup=200 if fast else 500, num_chains=2,
                                   keep_assignments=True, progress=False)
    seconds["DP (Gibbs)"] = time.perf_counter() - t0
    effective = {}
    for name, f in dp_fits.items():
        w = np.sort(f.weights)[::-1]
        effective[name] = int((w > WEIGHT_FLOOR).sum())
        print(f"DP prior, {name}: sorted posterior mean weights {np.round(w, 3).tolist()}; "
              f"{effective[name]} above {WEIGHT_FLOOR:.0%}; exp(entropy) = "
              f"{np.exp(-(w * np.log(w)).sum()):.2f}")
    occupied = occupied_components(dp_fits["Gibbs"].assignment_draws, 8, min_share=0.01)
    posterior_k = {int(v): float((occupied == v).mean()) for v in np.unique(occupied)}
    print("Posterior of the number of components holding >= 1% of the points (Gibbs): "
          + ", ".join(f"P({v}) = {p:.2f}" for v, p in posterior_k.items()))
    print("(A Dirichlet-process posterior tends to add small extra clusters: it is a prior on "
          "partitions\nthat keeps creating new clusters as data arrive, not an estimate of a "
          "fixed K; smaller γ\nmakes them rarer.)\n")

    print(f"True K = {TRUE_K}. Chosen: BIC {bic.best}, LOO {loo.best} (one-se rule {loo_k}), "
          f"DP {effective['Gibbs']} components above {WEIGHT_FLOOR:.0%} weight.")
    print("Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    path = out / "choosing_k.png"
    figure(bic, loo, dp_fits, occupied).savefig(path, dpi=80)
    print(f"Figure: {path}")
    return {"bic": bic, "loo": loo, "bic_k": bic.best, "loo_k": loo.best, "loo_one_se_k": loo_k,
            "dp_effective": effective, "dp_posterior_k": posterior_k, "dp_fits": dp_fits,
            "seconds": seconds, "files": [path]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="short chains (a test run)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for the figure (default ./probmix-examples/{NAME}; "
                             "a temporary folder with --fast)")
    args = parser.parse_args()
    results = main(fast=args.fast, out=args.out)
