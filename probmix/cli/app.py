"""The ``probmix`` command line: fit Bayesian mixture models to a data file.

``probmix demo``: fits the built-in three-cluster data of the scikit-learn
walkthrough with the MAP engine (closed-form EM), the posterior engines (CAVI,
SVI, Gibbs and NUTS; SVI and NUTS are left out with ``--fast``), k-means and
mean shift, and prints the fitted parameters next to the truth, the posterior
ones with their standard deviations.

``probmix fit``, ``probmix compare`` and ``probmix select`` read a data file
(:mod:`probmix.io.loaders`) and write labels, parameters, ArviZ data and figures.
Every error is one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _demo(args) -> int:
    import probmix
    from probmix.io.datasets import THREE_CLUSTERS, three_clusters

    x, source = three_clusters(200 if args.fast else 1000, seed=args.seed)
    print(f"probmix {probmix.__version__} demo: {len(x)} points, 3 Gaussian clusters in 2-D "
          "(the scikit-learn walkthrough data)\n")
    model = probmix.GaussianMixture(3, covariance="full", prior="default")
    start = time.perf_counter()
    fit = probmix.fit(model, x, engine="map", n_init=2, seed=args.seed)
    seconds = time.perf_counter() - start
    # order the fitted components like the true ones for display
    order = [int(np.argmin(np.linalg.norm(fit.means - m, axis=1))) for m in THREE_CLUSTERS["means"]]
    print(f"MAP (closed-form EM, {fit.n_iter} iterations, {seconds:.2f} s), components ordered "
          "as the truth:")
    print(f"{'k':>2}  {'weight':>7}  {'true':>7}  {'mean':>18}  {'true mean':>14}  covariance")
    for k, j in enumerate(order):
        mean = np.array2string(fit.means[j], precision=3, separator=", ")
        true = np.array2string(THREE_CLUSTERS["means"][k], precision=1, separator=", ")
        cov = np.array2string(fit.covariances[j].reshape(-1), precision=2, separator=", ")
        print(f"{k:>2}  {fit.weights[j]:7.3f}  {1 / 3:7.3f}  {mean:>18}  {true:>14}  {cov}")
    labels = fit.predict(x)
    agree = np.mean(np.asarray(order)[source] == labels)
    print(f"\nassignments agreeing with the true source: {agree:.1%}")
    print(f"BIC {fit.bic(x):.1f}   mean log-likelihood {fit.score(x):.4f}")
    posteriors = _posterior_table(probmix, model, x, fit.means, order, args)
    km = probmix.KMeans(3, n_init=4, seed=args.seed).fit(x)
    print("\nk-means centres:", np.array2string(km.cluster_centers_, precision=3, separator=", "))
    start = time.perf_counter()
    ms = probmix.MeanShift(keep_path=bool(args.out), seed=args.seed).fit(x)
    print(f"mean shift (bandwidth {ms.bandwidth_:.3f}, {time.perf_counter() - start:.1f} s): "
          f"{len(ms.cluster_centers_)} modes at",
          np.array2string(ms.cluster_centers_, precision=3, separator=", "))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "map_parameters.json").write_text(json.dumps(
            {"weights": fit.weights.tolist(), "means": fit.means.tolist(),
             "covariances": fit.covariances.tolist()}, indent=2))
        np.savetxt(out / "labels.csv", labels, fmt="%d", header="label", comments="")
        (out / "posterior_means.json").write_text(json.dumps(
            {name: {"mean": f.means.tolist(), "sd": f.draws["means"].std(axis=(0, 1)).tolist(),
                    "weights": f.weights.tolist()} for name, f in posteriors.items()}, indent=2))
        from probmix import plot

        plot.compare({"MAP": fit, **posteriors}, x).savefig(out / "compare.png", dpi=100)
        plot.guessed_vs_true(fit, x, source).savefig(out / "guessed_vs_true.png", dpi=100)
        plot.meanshift_paths(ms, x).savefig(out / "meanshift.png", dpi=100)
        names = ["map_parameters.json", "posterior_means.json", "labels.csv", "compare.png",
                 "guessed_vs_true.png", "meanshift.png"]
        print(f"\nwrote {', '.join(names)} to {out}")
    return 0


def _posterior_table(probmix, model, x, map_means, order, args) -> dict:
    """Fit the posterior engines and print each component mean as mean ± sd, per engine."""
    import warnings

    bar = not args.quiet
    engines = {"CAVI": dict(engine="svi", method="cavi"),
               "SVI": dict(engine="svi", progress=bar),
               "Gibbs": dict(engine="mcmc", kernel="gibbs", progress=bar),
               "NUTS": dict(engine="mcmc", progress=bar)}
    if args.fast:
        engines.pop("SVI")
        engines.pop("NUTS")
    fits, seconds = {}, {}
    for name, options in engines.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings are in the fits' options
            fits[name] = probmix.fit(model, x, seed=args.seed, **options)
        seconds[name] = time.perf_counter() - start
    print("\nposterior of the component means (mean ± sd), components ordered as the truth:")
    print(f"{'k':>2} {'coord':>5}  {'MAP':>8}" + "".join(
        f"  {f'{n} ({seconds[n]:.1f} s)':>20}" for n in fits))
    for k, j in enumerate(order):
        for d in range(x.shape[1]):
            row = f"{k:>2} {d:>5}  {map_means[j, d]:8.3f}"
            for f in fits.values():
                jj = int(np.argmin(np.linalg.norm(f.means - map_means[j], axis=1)))
                sd = f.draws["means"][..., jj, d].std()
                row += f"  {f.means[jj, d]:12.3f} ± {sd:5.3f}"
            print(row)
    return fits



# ----------------------------------------------------------------------------- data commands

_GMM_ENGINES = ("map", "svi", "mcmc")
_ENGINES = _GMM_ENGINES + ("kmeans", "meanshift")
_METHOD_OPTION = {"em": "verbose", "cavi": "verbose", "gradient": None,
                  "stochastic": "progress", "gibbs": "progress", "nuts": "progress"}


def _load(args):
    """The data file as (x (N, D), column names, x used for fitting, center, sd)."""
    from probmix.io.loaders import load_data
    from probmix.results.units import standardize_columns

    x, names = load_data(args.data, columns=args.columns, dataset=args.dataset)
    if args.standardize:
        z, center, sd = standardize_columns(x)
        return x, names, z, center, sd
    return x, names, x, None, None


def _check_k(k: int, n: int, flag: str = "-k") -> None:
    if k < 1:
        raise ValueError(f"{flag} must be at least 1; got {k}. Pass the number of components, "
                         "e.g. -k 3.")
    if k > n:
        raise ValueError(f"{flag} {k} is more than the {n} points in the data; pass at most "
                         f"{flag} {n}.")


def _model(args, k: int | None):
    """A GaussianMixture, or the program of --model bound to K."""
    import probmix

    if args.model:
        if args.covariance or args.prior:
            raise ValueError("--covariance and --prior set the built-in Gaussian mixture; a "
                             "--model program declares its own: drop them.")
        from probmix.io.loaders import load_program

        return load_program(args.model, n_components=k)
    if k is None:
        raise ValueError("the number of components is missing: pass -k K (e.g. -k 3).")
    return probmix.GaussianMixture(k, covariance=args.covariance or "full",
                                   prior=args.prior or "default")


def _engine_options(args, engine: str, is_gmm: bool) -> dict:
    """Options of probmix.fit for the engine, its method and the sampling flags."""
    default = {"map": "em" if is_gmm else "gradient", "svi": "stochastic", "mcmc": "nuts"}
    method = args.method or default[engine]
    key = "kernel" if engine == "mcmc" else "method"
    options = {key: method}
    if method not in _METHOD_OPTION:
        raise ValueError(f"--method {method!r} is not one of {sorted(_METHOD_OPTION)}; for "
                         f"--engine {engine} use one of {_METHODS_OF[engine]}.")
    if _METHOD_OPTION[method]:
        options[_METHOD_OPTION[method]] = not args.quiet
    if args.draws is not None:
        options["num_samples" if engine == "mcmc" else "num_draws"] = args.draws
        if engine == "mcmc":
            options["warmup"] = args.draws
    if args.warmup is not None:
        options["warmup"] = args.warmup
    if args.chains is not None:
        options["chains"] = args.chains
    if args.steps is not None:
        options["steps" if method == "stochastic" else "max_iter"] = args.steps
    return options


_METHODS_OF = {"map": ("em", "gradient"), "svi": ("cavi", "stochastic"),
               "mcmc": ("gibbs", "nuts")}


def _out(args) -> Path | None:
    if not args.out:
        return None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _save(fig, path: Path, written: list) -> None:
    fig.savefig(path, dpi=100)
    written.append(path.name)


def _labels_figure(x, labels, centers, names, title):
    """Points coloured by label with the centres marked (first two columns; one column: strip)."""
    from matplotlib.figure import Figure

    from probmix.plot.figures import _palette

    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    colors = [_palette(i) for i in labels]
    if x.shape[1] == 1:
        ax.scatter(x[:, 0], np.zeros(len(x)), c=colors, marker="|", s=60)
        ax.scatter(centers[:, 0], np.zeros(len(centers)), marker="X", s=120, c="k")
        ax.set_xlabel(names[0])
    else:
        ax.scatter(x[:, 0], x[:, 1], c=colors, s=10, alpha=0.6, linewidths=0)
        ax.scatter(centers[:, 0], centers[:, 1], marker="X", s=120, c="k", label="centres")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.legend()
    ax.set_title(title)
    return fig


def _fit_baseline(args, x, names, data, center, sd) -> int:
    import probmix

    if args.model:
        raise ValueError(f"--engine {args.engine} clusters the data directly; --model needs "
                         "--engine map, svi or mcmc.")
    start = time.perf_counter()
    if args.engine == "kmeans":
        if args.k is None:
            raise ValueError("--engine kmeans needs the number of clusters: pass -k K.")
        _check_k(args.k, len(x))
        est = probmix.KMeans(args.k, seed=args.seed).fit(data)
    else:
        if args.k is not None:
            raise ValueError("--engine meanshift finds the number of clusters itself: drop -k.")
        est = probmix.MeanShift(seed=args.seed).fit(data)
    seconds = time.perf_counter() - start
    labels = np.asarray(est.labels_)
    centers = np.asarray(est.cluster_centers_)
    if center is not None:
        centers = center + centers * sd
    inertia = float(((x - centers[labels]) ** 2).sum())
    result = {"engine": args.engine, "n_clusters": len(centers), "columns": names,
              "cluster_centers": centers.tolist(), "inertia": inertia,
              "units": "original (fitted on standardised columns)" if center is not None
              else "original"}
    if args.engine == "meanshift":
        result["bandwidth"] = float(est.bandwidth_)
    print(f"{args.engine} on {len(x)} points × {x.shape[1]} columns ({', '.join(names)}): "
          f"{len(centers)} clusters in {seconds:.2f} s"
          + ("; fitted on standardised columns, centres in the original units"
             if center is not None else ""))
    print(f"{'k':>3}  {'size':>6}  centre")
    counts = np.bincount(labels, minlength=len(centers))
    for k, c in enumerate(centers):
        print(f"{k:>3}  {counts[k]:>6}  {np.array2string(c, precision=4, separator=', ')}")
    print(f"inertia (sum of squared distances to the centres) {inertia:.6g}")
    out = _out(args)
    if out is not None:
        written = []
        np.savetxt(out / "labels.csv", labels, fmt="%d", header="label", comments="")
        written.append("labels.csv")
        (out / "parameters.json").write_text(json.dumps(result, indent=2))
        written.append("parameters.json")
        _save(_labels_figure(x, labels, centers, names, f"{args.engine}: {len(centers)} clusters"),
              out / "clusters.png", written)
        print(f"wrote {', '.join(written)} to {out}")
    return 0


def _fit(args) -> int:
    from probmix.results.export import parameter_summary
    from probmix.infer.dispatch import fit as run
    from probmix.results.units import log_jacobian, to_original_units

    x, names, data, center, sd = _load(args)
    if args.engine not in _GMM_ENGINES:
        return _fit_baseline(args, x, names, data, center, sd)
    if args.k is not None:
        _check_k(args.k, len(x))
    model = _model(args, args.k)
    is_gmm = not args.model
    if args.standardize and not is_gmm:
        raise ValueError("--standardize rescales the built-in Gaussian mixture's parameters; "
                         "standardise the data yourself for a --model program.")
    options = _engine_options(args, args.engine, is_gmm)
    start = time.perf_counter()
    fit = run(model, data, engine=args.engine, seed=args.seed, **options)
    seconds = time.perf_counter() - start
    shown = to_original_units(fit, x, center, sd) if center is not None else fit
    method = options.get("kernel", options.get("method"))
    n = len(x)
    print(f"{args.engine} fit ({method}) of {model!r} on {n} points × {x.shape[1]} columns "
          f"({', '.join(names)}): {seconds:.2f} s, converged={fit.converged}")
    if center is not None:
        print("fitted on standardised columns; parameters below are in the original units")
    summary = parameter_summary(shown)
    _print_parameters(summary)
    labels = shown.predict(x)
    k = shown.n_components if "weights" in shown.params else 0
    print(f"cluster sizes: {np.bincount(labels, minlength=k).tolist()}")
    score = fit.score(data) - (log_jacobian(sd) if sd is not None else 0.0)
    n_par = fit.n_parameters
    print(f"mean log-likelihood {score:.6g}   BIC {-2 * score * n + n_par * np.log(n):.6g}   "
          f"AIC {-2 * score * n + 2 * n_par:.6g}")
    out = _out(args)
    if out is None:
        return 0
    written = []
    proba = shown.predict_proba(x)
    header = "label," + ",".join(f"p{k}" for k in range(proba.shape[1]))
    np.savetxt(out / "labels.csv", np.column_stack([labels, proba]), delimiter=",",
               fmt=["%d"] + ["%.6g"] * proba.shape[1], header=header, comments="")
    written.append("labels.csv")
    summary.update(columns=names, units="original" + (" (fitted on standardised columns)"
                                                      if center is not None else ""))
    (out / "parameters.json").write_text(json.dumps(summary, indent=2))
    written.append("parameters.json")
    if shown.draws:
        shown.to_arviz().to_netcdf(out / "arviz.nc")
        written.append("arviz.nc")
    _fit_figures(shown, x, out, written)
    print(f"wrote {', '.join(written)} to {out}")
    return 0


def _print_parameters(summary: dict) -> None:
    """One line per scalar parameter: the estimate, and sd and interval when there are draws."""
    params = summary["parameters"]
    interval = summary.get("interval")
    if interval:
        p = round(100 * interval["prob"])
        print(f"{'parameter':<20} {'mean':>10} {'sd':>9}   {p}% interval")
    else:
        print(f"{'parameter':<20} {'mode':>10}")
    for name, value in params.items():
        if name == "covariances" and "weights" in params:
            continue  # printed per component below (diagonal), full matrices are in the JSON
        _print_site(name, value, interval)
    if "covariances" in params and "weights" in params:
        cov = params["covariances"]
        mean = np.asarray(cov["mean"] if isinstance(cov, dict) else cov)
        variances = np.diagonal(mean, axis1=-2, axis2=-1)
        for k, v in enumerate(variances):
            print(f"{f'variances[{k}]':<20} " + " ".join(f"{vi:10.4g}" for vi in v))


def _print_site(name, value, interval) -> None:
    if not isinstance(value, dict):
        value = {"mean": value}
    mean = np.asarray(value["mean"], dtype=float)
    sd = np.asarray(value.get("sd", np.full(mean.shape, np.nan)), dtype=float)
    low = np.asarray(value.get("low", np.full(mean.shape, np.nan)), dtype=float)
    high = np.asarray(value.get("high", np.full(mean.shape, np.nan)), dtype=float)
    for idx in np.ndindex(mean.shape):
        label = f"{name}[{','.join(map(str, idx))}]" if idx else name
        line = f"{label:<20} {mean[idx]:10.4g}"
        if interval and not np.isnan(sd[idx]):
            line += f" {sd[idx]:9.3g}   [{low[idx]:.4g}, {high[idx]:.4g}]"
        print(line)


def _fit_figures(fit, x, out: Path, written: list) -> None:
    from probmix import plot

    if getattr(fit.model, "family", None) is not None:
        _save(plot.clusters(fit, x), out / "clusters.png", written)
        if fit.draws and x.shape[1] >= 2:
            _save(plot.uncertainty(fit, x), out / "uncertainty.png", written)
    else:
        labels = fit.predict(x)
        centers = np.stack([x[labels == k].mean(0) if np.any(labels == k) else
                            np.full(x.shape[1], np.nan) for k in range(labels.max() + 1)])
        _save(_labels_figure(x, labels, centers, [str(i) for i in range(x.shape[1])],
                             f"{fit.engine} fit of the program: points by predicted component"),
              out / "clusters.png", written)
    if len(fit.losses):
        _save(plot.loss_curve(fit), out / "loss.png", written)
    if fit.engine == "mcmc":
        _save(plot.trace(fit, var_names=("weights",) if "weights" in fit.draws else None),
              out / "trace.png", written)


def _compare(args) -> int:
    import probmix
    from probmix.results.units import to_original_units

    x, names, data, center, sd = _load(args)
    if args.k is not None:
        _check_k(args.k, len(x))
    model = _model(args, args.k)
    if args.standardize and args.model:
        raise ValueError("--standardize rescales the built-in Gaussian mixture's parameters; "
                         "standardise the data yourself for a --model program.")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in engines if e not in _GMM_ENGINES]
    if bad or not engines:
        raise ValueError(f"--engines takes a comma-separated list of {', '.join(_GMM_ENGINES)}; "
                         f"got {args.engines!r}.")
    per_engine = {}
    if args.draws is not None:
        per_engine["mcmc"] = {"num_samples": args.draws, "warmup": args.draws}
        per_engine["svi"] = {"num_draws": args.draws}
    if not args.model:
        from probmix.results.compare import DEFAULT_METHODS

        for engine in engines:  # keep the fast closed-form defaults, change only the counts
            per_engine[engine] = {**DEFAULT_METHODS[engine], **per_engine.get(engine, {})}
    per_engine = {e: o for e, o in per_engine.items() if e in engines}
    result = probmix.compare(model, data, engines=engines, seed=args.seed,
                             progress=not args.quiet, **per_engine)
    if center is not None:
        result = result.with_fits({k: to_original_units(f, x, center, sd)
                                   for k, f in result.fits.items()}, x)
    print(f"{model!r} on {len(x)} points × {x.shape[1]} columns ({', '.join(names)}); "
          "components in the order of the first fit; posterior mean ± sd"
          + ("; fitted on standardised columns, parameters in the original units"
             if center is not None else ""))
    print(result.to_string())
    out = _out(args)
    if out is not None:
        written = []
        table = result.table.copy()
        table.columns = [f"{fit} {stat}" for fit, stat in table.columns]
        table.to_csv(out / "compare.csv", index_label="parameter")
        written.append("compare.csv")
        if not args.model and x.shape[1] >= 2:
            _save(result.plot(), out / "compare.png", written)
        print(f"wrote {', '.join(written)} to {out}")
    return 0


def _k_range(text: str) -> list[int]:
    try:
        if ":" in text:
            lo, hi = (int(p) for p in text.split(":"))
            ks = list(range(lo, hi + 1))
        else:
            ks = [int(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"--k must be a range like 1:8 or a list like 2,3,5; got {text!r}.") \
            from None
    if not ks:
        raise ValueError(f"--k {text} is an empty range; write it low:high, e.g. 1:8.")
    return ks


def _select(args) -> int:
    import pandas as pd
    from tqdm import tqdm

    import probmix
    from probmix.results.units import log_jacobian

    x, names, data, center, sd = _load(args)
    ks = _k_range(args.k)
    for k in ks:
        _check_k(k, len(x), "--k")
    options = {}
    if args.draws is not None:
        options.update(num_samples=args.draws, warmup=args.draws)
    tables, fits = [], {}
    for k in tqdm(ks, desc=f"select ({args.criterion})", disable=args.quiet, leave=False):
        part = probmix.select(data, [k], criterion=args.criterion,
                              covariance=args.covariance or "full", prior=args.prior or "default",
                              seed=args.seed, **options)
        tables.append(part.table)
        fits.update(part.fits)
    table = pd.concat(tables)
    column = table.columns[0]
    if center is not None:  # densities of z -> of x: a constant per K, the ranking is unchanged
        shift = len(x) * log_jacobian(sd)
        table[column] = table[column] + (2 * shift if column in ("bic", "aic") else -shift)
    lower = args.criterion in ("bic", "aic")
    best = int(table[column].idxmin() if lower else table[column].idxmax())
    selection = probmix.Selection(criterion=args.criterion, table=table, best=best, fits=fits)
    print(f"{args.criterion.upper()} of Gaussian mixtures ({args.covariance or 'full'} "
          f"covariance) on {len(x)} points × {x.shape[1]} columns ({', '.join(names)}); "
          f"{'lower' if lower else 'higher'} is better")
    print(table.to_string(float_format=lambda v: f"{v:.6g}"))
    print(f"best number of components: {best}")
    out = _out(args)
    if out is not None:
        from probmix import plot

        written = []
        table.to_csv(out / "selection.csv")
        written.append("selection.csv")
        _save(plot.criterion(selection), out / "criterion.png", written)
        print(f"wrote {', '.join(written)} to {out}")
    return 0


# ----------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``probmix: error: ...`` and exit code 2."""

    def error(self, message):
        self.exit(2, f"probmix: error: {message} (see `{self.prog} --help`)\n")


def _data_arguments(p) -> None:
    p.add_argument("data", metavar="DATA", help="data file: .csv with a header row, .npy, .npz "
                   "or .h5/.hdf5 (needs h5py: pip install probmix[h5])")
    p.add_argument("--columns", help="comma-separated columns to use (CSV header names; indices "
                   "0,1,... for arrays); default all")
    p.add_argument("--dataset", help="array of an .npz or dataset of an .h5 file")
    p.add_argument("--standardize", action="store_true", help="fit on columns scaled to mean 0 "
                   "and sd 1; parameters are reported back in the original units")
    p.add_argument("--out", help="folder for labels, parameters, ArviZ data and figures")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _model_arguments(p) -> None:
    p.add_argument("--covariance", choices=("full", "diag", "spherical", "tied"),
                   help="covariance family of the Gaussian mixture (default full)")
    p.add_argument("--prior", choices=("default", "flat"),
                   help="default: weakly informative, scaled to the data; flat: maximum "
                   "likelihood")


def _sampling_arguments(p) -> None:
    p.add_argument("--draws", type=int, help="posterior draws (MCMC: per chain, also the "
                   "warm-up unless --warmup)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="probmix", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="fit the built-in three-cluster data with every engine")
    demo.add_argument("--out", default="probmix-demo",
                      help="folder for parameters, labels and figures (default ./probmix-demo)")
    demo.add_argument("--fast", action="store_true", help="a smaller data set, fewer engines")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)

    fit = sub.add_parser("fit", help="fit one engine to a data file",
                         description="Fit a mixture to DATA; print the parameters, write labels "
                         "(CSV), parameters with uncertainty (JSON), the ArviZ data (netCDF, "
                         "svi/mcmc) and figures (PNG) to --out.")
    _data_arguments(fit)
    fit.add_argument("-k", type=int, help="number of components (clusters)")
    fit.add_argument("--engine", default="map", choices=_ENGINES,
                     help="map: posterior mode; svi: variational posterior; mcmc: posterior "
                     "draws; kmeans, meanshift: baselines (default map)")
    fit.add_argument("--method", help="algorithm of the engine: map: em|gradient, svi: "
                     "stochastic|cavi, mcmc: nuts|gibbs (default em, stochastic, nuts)")
    _model_arguments(fit)
    fit.add_argument("--model", metavar="PATH.py", help="fit your own Pyro mixture program: a "
                     "file defining program(x, *, n_components=...); it is imported, so its code "
                     "runs: use only files you trust")
    _sampling_arguments(fit)
    fit.add_argument("--warmup", type=int, help="MCMC warm-up iterations per chain")
    fit.add_argument("--chains", type=int, help="MCMC chains")
    fit.add_argument("--steps", type=int, help="SVI steps (CAVI, EM: most iterations)")
    fit.set_defaults(run=_fit)

    compare = sub.add_parser("compare", help="MAP vs SVI vs MCMC side by side",
                             description="Fit one model with several engines (EM, CAVI and "
                             "Gibbs for the Gaussian mixture) and print their estimates side by "
                             "side; write compare.csv and compare.png to --out.")
    _data_arguments(compare)
    compare.add_argument("-k", type=int, help="number of components")
    compare.add_argument("--engines", default="map,svi,mcmc",
                         help="comma-separated engines (default map,svi,mcmc)")
    _model_arguments(compare)
    compare.add_argument("--model", metavar="PATH.py", help="your own Pyro mixture program "
                         "(imported, so its code runs)")
    _sampling_arguments(compare)
    compare.set_defaults(run=_compare)

    select = sub.add_parser("select", help="choose the number of components",
                            description="Fit Gaussian mixtures for each K and print the "
                            "criterion; write selection.csv and criterion.png to --out.")
    _data_arguments(select)
    select.add_argument("--k", "-k", default="1:8", help="candidate K: a range low:high "
                        "(inclusive) or a list 2,3,5 (default 1:8)")
    select.add_argument("--criterion", default="bic", choices=("bic", "aic", "loo", "waic"),
                        help="bic/aic from MAP fits (lower is better) or loo/waic from Gibbs "
                        "draws (higher is better); default bic")
    _model_arguments(select)
    _sampling_arguments(select)
    select.set_defaults(run=_select)
    return parser


def _one_line(text) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> int:
    """Entry point of the ``probmix`` console script; returns the exit code.

    Errors in the input (missing file, bad column, NaN, K out of range, unknown engine, ...)
    print one line ``probmix: error: ...`` on stderr and return 2. An unexpected failure prints
    one line too and returns 1 (set ``PROBMIX_TRACEBACK=1`` to see the traceback).
    """
    import os
    import warnings

    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2, already printed)
        return int(stop.code or 0)

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"probmix: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            return args.run(args)
        except (ValueError, TypeError, OSError) as err:
            print(f"probmix: error: {_one_line(err)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("probmix: interrupted", file=sys.stderr)
            return 130
        except Exception as err:
            if os.environ.get("PROBMIX_TRACEBACK"):
                raise
            print(f"probmix: error: unexpected {type(err).__name__}: {_one_line(err)} (a bug: "
                  "please report it; set PROBMIX_TRACEBACK=1 to see the traceback)",
                  file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
