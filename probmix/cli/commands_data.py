"""``probmix compare`` (one model, several engines side by side) and ``probmix select``
(the number of components by a criterion)."""

from __future__ import annotations

from probmix.cli import output
from probmix.cli.common import (ENGINES, OPTIMIZER_FLAGS, build_model, check_k, load,
                                method_for, optimizer_options, set_option)

__all__ = ["compare_command", "select_command"]


def compare_command(args) -> int:
    import dataclasses

    import probmix
    from probmix.results.compare import DEFAULT_METHODS
    from probmix.results.units import to_original_units

    out = output.out_dir(args, "compare")  # checked before any fit
    x, names, data, center, sd = load(args)
    if args.k is not None:
        check_k(args.k, len(x))
    model = build_model(args, args.k)
    if args.standardize and args.model:
        raise ValueError("--standardize rescales the built-in Gaussian mixture's parameters; "
                         "standardise the data yourself for a --model program.")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in engines if e not in ENGINES]
    if bad or not engines:
        raise ValueError(f"--engines takes a comma-separated list of {', '.join(ENGINES)}; "
                         f"got {args.engines!r}.")
    per_engine = {e: dict(DEFAULT_METHODS[e]) if not args.model else {} for e in engines}
    if args.draws is not None:
        per_engine.get("mcmc", {}).update(num_samples=args.draws, num_warmup=args.draws)
        per_engine.get("svi", {}).update(num_draws=args.draws)
    _spread_optimizer_flags(args, model, per_engine)
    result = probmix.compare(model, data, engines=engines, seed=args.seed,
                             progress=not args.quiet, **per_engine)
    if center is not None:
        result = result.with_fits({k: to_original_units(f, x, center, sd)
                                   for k, f in result.fits.items()}, x)
    if not args.model and len(names) == x.shape[1]:  # the CSV header names the figure's axes
        result = result.with_fits({k: dataclasses.replace(f, feature_names=list(names))
                                   for k, f in result.fits.items()}, x)
    print(f"{model!r} on {len(x)} points × {x.shape[1]} columns ({', '.join(names)}); "
          "components in the order of the first fit; posterior mean ± sd"
          + ("; fitted on standardised columns, parameters in the original units"
             if center is not None else ""))
    print(result.to_string())
    if out is not None:
        table = result.table.copy()
        table.columns = [f"{fit} {stat}" for fit, stat in table.columns]
        out.write("compare.csv", lambda tmp: table.to_csv(tmp, index_label="parameter"))
        if not args.model and x.shape[1] >= 2:
            output.save_figure(result.plot(), out, "compare.png")
        print(out.finish())
    return 0


def _spread_optimizer_flags(args, model, per_engine: dict) -> None:
    """Give ``--tol``, ``--n-init``, ``--max-iter`` to the compared engines whose method takes
    them (the samplers take none); an error when none of them does."""
    entries = {e: method_for(e, opts.get("method"), model) for e, opts in per_engine.items()}
    for name, flag in OPTIMIZER_FLAGS.items():
        value = getattr(args, name)
        if value is None:
            continue
        takers = [e for e, entry in entries.items() if entry.accepts(name)]
        if not takers:
            listed = ", ".join(f"{e} ({entry.method})" for e, entry in entries.items())
            raise ValueError(f"{flag} applies to none of the engines compared: {listed} have no "
                             f"{name} option.")
        for e in takers:
            per_engine[e][name] = value


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


def _covariance(text: str | None):
    """--covariance: None (select's default), "all", one name, or a list from "VVV,EEE"."""
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"--covariance takes all, a name or a comma list like VVV,EEE; got "
                         f"{text!r}.")
    return names[0] if len(names) == 1 else names


def select_command(args) -> int:
    import math

    import probmix
    from probmix.results.units import log_jacobian

    out = output.out_dir(args, "select")  # checked before any fit
    x, names, data, center, sd = load(args)
    ks = _k_range(args.k)
    for k in ks:
        check_k(k, len(x), "--k")
    likelihood = args.criterion in ("bic", "aic", "icl")
    engine, method = ("map", "em") if likelihood else ("mcmc", "gibbs")
    entry = method_for(engine, method, None)
    options = {"engine": engine, "method": method, **optimizer_options(args, entry)}
    set_option(options, entry, "--init", "init", args.init)
    if args.draws is not None:
        if not entry.accepts("num_samples"):
            raise ValueError(f"--draws sets the posterior draws of --criterion loo or waic; "
                             f"--criterion {args.criterion} uses MAP fits: drop it.")
        options.update(num_samples=args.draws, num_warmup=args.draws)
    selection = probmix.select(data, ks, criterion=args.criterion,
                               covariance=_covariance(args.covariance), prior=args.prior,
                               seed=args.seed, progress=not args.quiet, screen=args.screen,
                               **options)
    table = selection.table
    if center is not None:  # densities of z -> of x: a constant per fit, the ranking is unchanged
        shift = len(x) * log_jacobian(sd)
        for column in table.columns.intersection(["bic", "aic", "icl"]):
            table[column] = table[column] + 2 * shift
        for column in table.columns.intersection(["loglik", "elpd_loo", "elpd_waic"]):
            table[column] = table[column] - shift
    families = list(table["covariance"].unique())
    column = selection.column
    print(f"{args.criterion.upper()} of Gaussian mixtures, {len(families)} covariance "
          f"model{'s' if len(families) > 1 else ''} ({','.join(families)}) × K = "
          f"{','.join(map(str, ks))}, on {len(x)} points × {x.shape[1]} columns "
          f"({', '.join(names)}); "
          + ("lower is better (probmix's sign: -2 log L + penalty, the negative of mclust's)"
             if likelihood else "higher is better"))
    failed = int(table[column].isna().sum())
    if failed:
        print(f"{failed} of {len(table)} fits failed (a degenerate covariance): NaN rows")
    top = selection.top(3).copy()
    best_value = top[column].iloc[0]
    top[f"{column} diff"] = (top[column] - best_value) if likelihood else (best_value - top[column])
    print(f"best {len(top)} models by {args.criterion.upper()}:")
    print(top.to_string(index=False, float_format=lambda v: f"{v:.6g}" if math.isfinite(v)
                        else "nan"))
    print(f"best model: covariance {selection.best_covariance}, {selection.best} components")
    print(f"best number of components: {selection.best}")
    if out is not None:
        from probmix import plot

        out.write("selection.csv", lambda tmp: table.to_csv(tmp, index=False))
        output.save_figure(plot.criterion(selection), out, "criterion.png")
        print(out.finish())
    return 0
