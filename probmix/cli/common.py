"""What the data commands share: reading DATA, building the model, and turning the flags into
engine options, checked against the engine registry (:mod:`probmix.infer.registry`)."""

from __future__ import annotations

from probmix.infer.registry import ENGINES, REGISTRY, Method, default_method, lookup

__all__ = ["ENGINES", "METHODS", "OPTIMIZER_FLAGS", "build_model", "check_k", "engine_options",
           "load", "method_for", "optimizer_options", "set_option"]

#: Every method of the registry, for the choices of ``--method``.
METHODS = tuple(dict.fromkeys(method for _, method in REGISTRY))
#: Engine option -> the flag that sets it, for the optimisers' stopping rules.
OPTIMIZER_FLAGS = {"tol": "--tol", "n_init": "--n-init", "max_iter": "--max-iter"}


def load(args):
    """The data file as (x (N, D), column names, x used for fitting, center, sd)."""
    from probmix.io.loaders import load_data
    from probmix.results.units import standardize_columns

    delimiter = "\t" if args.delimiter in ("tab", "\\t") else args.delimiter
    x, names = load_data(args.data, columns=args.columns, dataset=args.dataset,
                         exclude=args.exclude, delimiter=delimiter, decimal=args.decimal,
                         max_expansion=args.max_expansion)
    if args.standardize:
        z, center, sd = standardize_columns(x)
        return x, names, z, center, sd
    return x, names, x, None, None


def check_k(k: int, n: int, flag: str = "-k") -> None:
    if k < 1:
        raise ValueError(f"{flag} must be at least 1; got {k}. Pass the number of components, "
                         "e.g. -k 3.")
    if k > n:
        raise ValueError(f"{flag} {k} is more than the {n} points in the data; pass at most "
                         f"{flag} {n}.")


def build_model(args, k: int | None):
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


def method_for(engine: str, method: str | None, model) -> Method:
    """The registry entry that ``--engine`` and ``--method`` name; without ``--method``, the
    closed form for a GaussianMixture (EM, CAVI, Gibbs, as ``compare``), else the generic one."""
    return lookup(engine, method or default_method(engine, model, closed_form=True))


def set_option(options: dict, entry: Method, flag: str, name: str, value) -> None:
    """``options[name] = value`` when the flag was given; an error naming the engine and method
    when they have no such option."""
    if value is None:
        return
    if not entry.accepts(name):
        raise ValueError(f"{flag} does not apply to --engine {entry.engine} --method "
                         f"{entry.method} (it has no {name} option; its options: "
                         f"{', '.join(sorted(entry.options))}).")
    options[name] = value


def optimizer_options(args, entry: Method) -> dict:
    """``--tol``, ``--n-init`` and ``--max-iter`` as options of ``entry``."""
    options = {}
    for name, flag in OPTIMIZER_FLAGS.items():
        set_option(options, entry, flag, name, getattr(args, name, None))
    return options


def engine_options(args, engine: str, model) -> dict:
    """Options of probmix.fit for the engine, its method and the sampling and optimiser flags."""
    entry = method_for(engine, args.method, model)
    options = {"method": entry.method}
    if entry.accepts("progress"):
        options["progress"] = not args.quiet
    if args.draws is not None:
        if entry.accepts("num_samples"):
            options.update(num_samples=args.draws, num_warmup=args.draws)
        else:
            set_option(options, entry, "--draws", "num_draws", args.draws)
    set_option(options, entry, "--warmup", "num_warmup", args.warmup)
    set_option(options, entry, "--chains", "num_chains", args.chains)
    if args.steps is not None:
        name = "steps" if entry.accepts("steps") else "max_iter"
        set_option(options, entry, "--steps", name, args.steps)
    options.update(optimizer_options(args, entry))
    set_option(options, entry, "--init", "init", getattr(args, "init", None))
    return options
