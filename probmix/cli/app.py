"""The ``probmix`` command line: fit Bayesian mixture models to a data file.

``probmix demo``: fits the built-in three-cluster data of the scikit-learn
walkthrough with the MAP engine (closed-form EM), the posterior engines (CAVI,
SVI, Gibbs and NUTS; SVI and NUTS are left out with ``--fast``), k-means and
mean shift, and prints the fitted parameters next to the truth, the posterior
ones with their standard deviations.

``probmix fit``, ``probmix compare`` and ``probmix select`` read a data file
(:mod:`probmix.io.loaders`) and write labels, parameters, ArviZ data and figures.
Every error is one line on stderr with exit code 2.

This module holds the parser and :func:`main`; the commands are in ``commands_demo``,
``commands_fit`` and ``commands_data``, what they share in ``common`` (data, model, engine
options from :mod:`probmix.infer.registry`) and ``output`` (figures, printed parameters).
"""

from __future__ import annotations

import argparse
import os
import sys

from probmix.cli.commands_data import compare_command, select_command
from probmix.cli.commands_demo import demo_command
from probmix.cli.commands_fit import BASELINES, fit_command
from probmix.cli.common import ENGINES, METHODS
from probmix.infer.registry import CLOSED_FORM, REGISTRY, methods
from probmix.model.covariance_names import MCLUST_MODELS

__all__ = ["main"]


# ----------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``probmix: error: ...`` and exit code 2."""

    def error(self, message):
        self.exit(2, f"probmix: error: {message} (see `{self.prog} --help`)\n")

COVARIANCE_CHOICES = ("full", "diag", "spherical", "tied") + MCLUST_MODELS


def _data_arguments(p) -> None:
    p.add_argument("data", metavar="DATA", help="data file: .csv with a header row, .npy, .npz "
                   "or .h5/.hdf5 (needs h5py: pip install probmix[h5])")
    p.add_argument("--columns", help="comma-separated columns to use (CSV header names; indices "
                   "0,1,... for arrays); default all")
    p.add_argument("--dataset", help="array of an .npz or dataset of an .h5 file")
    p.add_argument("--exclude", metavar="COLS", help="comma-separated columns to leave out "
                   "(e.g. an id column)")
    p.add_argument("--delimiter", help="CSV field delimiter (default: sniffed among , ; tab |)")
    p.add_argument("--decimal", help="CSV decimal mark (default: sniffed; ',' for 1,5)")
    p.add_argument("--max-expansion", type=float, default=100.0, metavar="X",
                   help="how many times its compressed size a compressed .npz/.h5 array may "
                   "expand (above 64 MiB; default 100)")
    p.add_argument("--standardize", action="store_true", help="fit on columns scaled to mean 0 "
                   "and sd 1; parameters are reported back in the original units")
    p.add_argument("--out", help="folder for labels, parameters, ArviZ data and figures")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _model_arguments(p) -> None:
    p.add_argument("--covariance", choices=COVARIANCE_CHOICES, metavar="NAME",
                   help="covariance model of the Gaussian mixture: full, diag, spherical, "
                   "tied, or one of mclust's EII VII EEI VEI EVI VVI EEE VEE EVE VVE EEV VEV "
                   "EVV VVV (the constrained ones fit with --engine map only; default full)")
    p.add_argument("--prior", choices=("default", "flat"),
                   help="default: weakly informative, scaled to the data; flat: maximum "
                   "likelihood")


def _sampling_arguments(p) -> None:
    p.add_argument("--draws", type=int, help="posterior draws (MCMC: per chain, also the "
                   "warm-up unless --warmup)")


def _optimizer_arguments(p) -> None:
    p.add_argument("--tol", type=float, help="convergence tolerance of the optimisers (EM, "
                   "gradient MAP, SVI, CAVI; default: the method's)")
    p.add_argument("--n-init", type=int, help="restarts, the best one kept (EM, gradient MAP, "
                   "k-means)")
    p.add_argument("--max-iter", type=int, help="iteration cap of the optimisers (EM, gradient "
                   "MAP, CAVI; SVI: steps)")


def _init_argument(p) -> None:
    p.add_argument("--init", metavar="NAME", help="how the method starts. EM: auto (default: "
                   "two hierarchical trees and five k-means++ starts, the best kept), hc, "
                   "mclust (mclust's own start alone: select then is R's Mclust(X)), kmeans, "
                   "k-means++, random, random_from_data; k-means: k-means++ or random; "
                   "CAVI and Gibbs: their own (map, dispersed, prior)")


def _method_help() -> str:
    """``--method``'s help, from the engine registry."""
    listed = "; ".join(f"{e}: {'|'.join(methods(e))}" for e in ENGINES)
    defaults = ", ".join(CLOSED_FORM[e] for e in ENGINES)
    generic = ", ".join(m for (e, m), entry in REGISTRY.items() if "program" in entry.default_for)
    return (f"algorithm of the engine ({listed}; default for the Gaussian mixture {defaults}, "
            f"the closed forms; for a --model {generic})")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="probmix", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="fit the built-in three-cluster data with every engine")
    demo.add_argument("--out", default="probmix-demo",
                      help="folder for parameters, labels and figures (default ./probmix-demo)")
    demo.add_argument("--fast", action="store_true", help="a smaller data set, fewer engines")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=demo_command)

    fit = sub.add_parser("fit", help="fit one engine to a data file",
                         description="Fit a mixture to DATA; print the parameters, write labels "
                         "(CSV), parameters with uncertainty (JSON), the ArviZ data (netCDF, "
                         "svi/mcmc) and figures (PNG) to --out.")
    _data_arguments(fit)
    fit.add_argument("-k", type=int, help="number of components (clusters)")
    fit.add_argument("--engine", default="map", choices=ENGINES + BASELINES,
                     help="map: posterior mode; svi: variational posterior; mcmc: posterior "
                     "draws; kmeans, meanshift: baselines (default map)")
    fit.add_argument("--method", choices=METHODS, metavar="METHOD", help=_method_help())
    _model_arguments(fit)
    fit.add_argument("--model", metavar="PATH.py", help="fit your own Pyro mixture program: a "
                     "file defining program(x, *, n_components=...); it is imported, so its code "
                     "runs: use only files you trust")
    _sampling_arguments(fit)
    fit.add_argument("--warmup", type=int, help="MCMC warm-up iterations per chain")
    fit.add_argument("--chains", type=int, help="MCMC chains")
    fit.add_argument("--steps", type=int, help="SVI steps (CAVI, EM: most iterations)")
    _optimizer_arguments(fit)
    _init_argument(fit)
    fit.set_defaults(run=fit_command)

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
    _optimizer_arguments(compare)
    compare.set_defaults(run=compare_command)

    select = sub.add_parser("select", help="choose the covariance model and number of "
                            "components (mclust's search)",
                            description="Fit Gaussian mixtures for each covariance model and K, "
                            "print the best three by the criterion; write selection.csv (every "
                            "fit) and criterion.png to --out.")
    _data_arguments(select)
    select.add_argument("--k", "-k", default="1:9", help="candidate K: a range low:high "
                        "(inclusive) or a list 2,3,5 (default 1:9)")
    select.add_argument("--criterion", default="bic", choices=("bic", "aic", "icl", "loo", "waic"),
                        help="bic/aic/icl from MAP fits (lower is better) or loo/waic from "
                        "Gibbs draws (higher is better); default bic")
    select.add_argument("--covariance", help="all (mclust's 14 models, EII ... VVV), one of "
                        "them or of full, diag, spherical, tied, or a comma list like VVV,EEE "
                        "(default all for bic/aic/icl, full for loo/waic)")
    select.add_argument("--prior", choices=("default", "flat"),
                        help="flat: maximum likelihood (default for bic/aic/icl, as mclust); "
                        "default: weakly informative (default for loo/waic)")
    select.add_argument("--no-screen", dest="screen", action="store_false",
                        help="run every fit to the full stopping rule (by default every "
                        "(model, K) is screened with a loose stop and only those within 30 "
                        "BIC units of the best are refined)")
    _sampling_arguments(select)
    _optimizer_arguments(select)
    _init_argument(select)
    select.set_defaults(run=select_command)
    return parser


def _one_line(text) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> int:
    """Entry point of the ``probmix`` console script; returns the exit code.

    Errors in the input (missing file, bad column, NaN, K out of range, unknown engine, ...)
    print one line ``probmix: error: ...`` on stderr and return 2. An unexpected failure prints
    one line too and returns 1 (set ``PROBMIX_TRACEBACK=1`` to see the traceback).
    """
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
        except MemoryError as err:
            print(f"probmix: error: out of memory: {_one_line(err) or 'an allocation failed'}",
                  file=sys.stderr)
            return 2
        except RuntimeError as err:
            if "allocate" not in str(err) and "out of memory" not in str(err):
                return _unexpected(err)
            print("probmix: error: out of memory: the fit needs more memory than this machine "
                  "has. Use --covariance diag or spherical, fewer columns (--columns), or a "
                  "smaller -k.", file=sys.stderr)
            return 2
        except Exception as err:
            return _unexpected(err)


def _unexpected(err) -> int:
    if os.environ.get("PROBMIX_TRACEBACK"):
        raise err
    print(f"probmix: error: unexpected {type(err).__name__}: {_one_line(err)} (a bug: "
          "please report it; set PROBMIX_TRACEBACK=1 to see the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
