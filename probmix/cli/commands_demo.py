"""``probmix demo``: the built-in three-cluster data fitted by every engine and baseline.

The MAP engine (closed-form EM), the posterior engines (CAVI, SVI, Gibbs and NUTS; SVI and
NUTS are left out with ``--fast``), k-means and mean shift; it prints the fitted parameters
next to the truth, the posterior ones with their standard deviations.
"""

from __future__ import annotations

import json
import time
import numpy as np

__all__ = ["demo_command"]


def demo_command(args) -> int:
    import probmix
    from probmix.cli.output import out_dir
    from probmix.io.datasets import THREE_CLUSTERS, three_clusters

    out = out_dir(args, "demo")  # checked before any fit
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
    if out is not None:
        out.write_text("map_parameters.json", json.dumps(
            {"weights": fit.weights.tolist(), "means": fit.means.tolist(),
             "covariances": fit.covariances.tolist()}, indent=2))
        out.write("labels.csv", lambda tmp: np.savetxt(tmp, labels, fmt="%d", header="label",
                                                       comments=""))
        out.write_text("posterior_means.json", json.dumps(
            {name: {"mean": f.means.tolist(), "sd": f.draws["means"].std(axis=(0, 1)).tolist(),
                    "weights": f.weights.tolist()} for name, f in posteriors.items()}, indent=2))
        from probmix import plot

        out.figure(plot.compare({"MAP": fit, **posteriors}, x), "compare.png")
        out.figure(plot.guessed_vs_true(fit, x, source), "guessed_vs_true.png")
        out.figure(plot.meanshift_paths(ms, x), "meanshift.png")
        print("\n" + out.finish())
    return 0


def _posterior_table(probmix, model, x, map_means, order, args) -> dict:
    """Fit the posterior engines and print each component mean as mean ± sd, per engine."""
    import warnings

    bar = not args.quiet
    engines = {"CAVI": dict(engine="svi", method="cavi"),
               "SVI": dict(engine="svi", progress=bar),
               "Gibbs": dict(engine="mcmc", method="gibbs", progress=bar),
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
