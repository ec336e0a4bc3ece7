"""``probmix fit``: one engine (or baseline) on a data file; parameters, labels, figures."""

from __future__ import annotations

import dataclasses
import inspect
import json
import time

import numpy as np

from probmix.cli import output
from probmix.cli.common import (ENGINES, OPTIMIZER_FLAGS, build_model, check_k,
                                engine_options, load)

__all__ = ["fit_command", "BASELINES"]

BASELINES = ("kmeans", "meanshift")


def fit_command(args) -> int:
    from probmix.infer.dispatch import fit as run
    from probmix.results.export import parameter_summary
    from probmix.results.units import log_jacobian, to_original_units

    out = output.out_dir(args, "fit")  # a folder that cannot be written fails before the fit
    x, names, data, center, sd = load(args)
    if args.engine not in ENGINES:
        return _fit_baseline(args, x, names, data, center, sd, out)
    if args.k is not None:
        check_k(args.k, len(x))
    model = build_model(args, args.k)
    if args.standardize and args.model:
        raise ValueError("--standardize rescales the built-in Gaussian mixture's parameters; "
                         "standardise the data yourself for a --model program.")
    options = engine_options(args, args.engine, model)
    start = time.perf_counter()
    fit = run(model, data, engine=args.engine, seed=args.seed, **options)
    seconds = time.perf_counter() - start
    shown = to_original_units(fit, x, center, sd) if center is not None else fit
    if len(names) == shown.n_features:  # the CSV header: on the tables, figures and saved fit
        shown = dataclasses.replace(shown, feature_names=list(names))
    n = len(x)
    print(f"{args.engine} fit ({options['method']}) of {model!r} on {n} points × {x.shape[1]} "
          f"columns ({', '.join(names)}): {seconds:.2f} s, {output.status(fit)}")
    if center is not None:
        print("fitted on standardised columns; parameters below are in the original units")
    summary = parameter_summary(shown)
    if shown.mixture.gaussian:  # weights, means, sds and correlations; all values in the JSON
        from probmix.results.table import component_table

        print(component_table(shown, names))
    else:
        output.print_parameters(summary)
    labels = shown.predict(x)
    k = shown.n_components if "weights" in shown.params else 0
    print(f"cluster sizes: {np.bincount(labels, minlength=k).tolist()}")
    score = fit.score(data) - (log_jacobian(sd) if sd is not None else 0.0)
    n_par = fit.n_parameters
    print(f"mean log-likelihood {score:.6g}   BIC {-2 * score * n + n_par * np.log(n):.6g}   "
          f"AIC {-2 * score * n + 2 * n_par:.6g}")
    if out is None:
        return 0
    proba = shown.predict_proba(x)
    header = "label," + ",".join(f"p{k}" for k in range(proba.shape[1]))
    out.write("labels.csv", lambda tmp: np.savetxt(
        tmp, np.column_stack([labels, proba]), delimiter=",",
        fmt=["%d"] + ["%.6g"] * proba.shape[1], header=header, comments=""))
    summary.update(columns=names, units="original" + (" (fitted on standardised columns)"
                                                      if center is not None else ""))
    out.write_text("parameters.json", json.dumps(summary, indent=2))
    if shown.draws:
        data_tree = shown.to_arviz()
        out.write("arviz.nc", data_tree.to_netcdf)
    output.fit_figures(shown, x, out)
    print(out.finish())
    return 0


def _fit_baseline(args, x, names, data, center, sd, out) -> int:
    import probmix

    if args.model:
        raise ValueError(f"--engine {args.engine} clusters the data directly; --model needs "
                         "--engine map, svi or mcmc.")
    if args.method is not None:
        raise ValueError(f"--method picks the algorithm of --engine map, svi or mcmc; --engine "
                         f"{args.engine} has none: drop it.")
    cls = probmix.KMeans if args.engine == "kmeans" else probmix.MeanShift
    takes = inspect.signature(cls).parameters
    options = {}
    for name, flag in OPTIMIZER_FLAGS.items():
        value = getattr(args, name)
        if value is not None and name not in takes:
            raise ValueError(f"{flag} does not apply to --engine {args.engine} (it has no {name} "
                             "option).")
        if value is not None:
            options[name] = value
    if args.init is not None:
        if "init" not in takes:
            raise ValueError(f"--init does not apply to --engine {args.engine} (it has no init "
                             "option).")
        options["init"] = args.init
    start = time.perf_counter()
    if args.engine == "kmeans":
        if args.k is None:
            raise ValueError("--engine kmeans needs the number of clusters: pass -k K.")
        check_k(args.k, len(x))
        est = probmix.KMeans(args.k, seed=args.seed, **options).fit(data)
    else:
        if args.k is not None:
            raise ValueError("--engine meanshift finds the number of clusters itself: drop -k.")
        est = probmix.MeanShift(seed=args.seed, **options).fit(data)
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
    if out is not None:
        out.write("labels.csv", lambda tmp: np.savetxt(tmp, labels, fmt="%d", header="label",
                                                       comments=""))
        out.write_text("parameters.json", json.dumps(result, indent=2))
        output.save_figure(output.labels_figure(x, labels, centers, names,
                                                f"{args.engine}: {len(centers)} clusters"),
                           out, "clusters.png")
        print(out.finish())
    return 0
