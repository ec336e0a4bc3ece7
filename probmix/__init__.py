"""probmix: Bayesian mixture models as Pyro programs with interchangeable engines.

Declare a model (:class:`GaussianMixture`, or any Pyro mixture program), then
infer with :func:`fit`; every engine returns a :class:`Fit`.

The names below are imported on first use (PEP 562): ``import probmix`` loads no
torch, Pyro, numba, ArviZ or matplotlib, so a command line or a script that only
needs a part starts fast. ``from probmix import fit`` works as usual.
"""

from __future__ import annotations

import importlib

from probmix import _interrupt

_interrupt.install()  # the ``probmix`` command: Ctrl-C while importing is one line

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Comparison": "probmix.results.compare",
    "compare": "probmix.results.compare",
    "CovarianceFamily": "probmix.model.covariance",
    "DiagCovariance": "probmix.model.covariance",
    "FullCovariance": "probmix.model.covariance",
    "SphericalCovariance": "probmix.model.covariance",
    "TiedCovariance": "probmix.model.covariance",
    "as_data": "probmix.io.data",
    "three_clusters": "probmix.io.datasets",
    "ConvergenceWarning": "probmix.exceptions",
    "DegenerateCovarianceError": "probmix.exceptions",
    "fit": "probmix.infer.dispatch",
    "GaussianMixture": "probmix.model.gaussian_mixture",
    "KMeans": "probmix.baselines.kmeans",
    "MiniBatchKMeans": "probmix.baselines.kmeans_streaming",
    "MeanShift": "probmix.baselines.meanshift",
    "estimate_bandwidth": "probmix.baselines.meanshift",
    "load": "probmix.io.persistence",
    "Prior": "probmix.model.priors",
    "check_program": "probmix.model.program_check",
    "Fit": "probmix.results.result",
    "Selection": "probmix.results.selection",
    "compare_models": "probmix.results.selection",
    "select": "probmix.results.selection",
}
_SUBMODULES = ("sklearn", "plot", "model", "infer", "io", "results", "baselines", "cli")

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    """Import a public name's module on first use and keep the name in the namespace."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"probmix.{name}")
    else:
        raise AttributeError(f"module 'probmix' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
