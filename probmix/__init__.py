"""probmix: Bayesian mixture models as Pyro programs with interchangeable engines.

Declare a model (:class:`GaussianMixture`, or any Pyro mixture program), then
infer with :func:`fit`; every engine returns a :class:`Fit`.
"""

from probmix import _interrupt

_interrupt.install()  # the ``probmix`` command: Ctrl-C while importing is one line (first)

from probmix.results.compare import Comparison, compare
from probmix.model.covariance import (CovarianceFamily, DiagCovariance, FullCovariance,
                                SphericalCovariance, TiedCovariance)
from probmix.io.data import as_data
from probmix.io.datasets import three_clusters
from probmix.exceptions import ConvergenceWarning, DegenerateCovarianceError
from probmix.infer.dispatch import fit
from probmix.model.gaussian_mixture import GaussianMixture
from probmix.baselines.kmeans import KMeans
from probmix.baselines.kmeans_streaming import MiniBatchKMeans
from probmix.baselines.meanshift import MeanShift, estimate_bandwidth
from probmix.io.persistence import load
from probmix.model.priors import Prior
from probmix.model.program_check import check_program
from probmix.results.result import Fit
from probmix.results.selection import Selection, compare_models, select

__version__ = "0.1.0"

__all__ = [
    "Comparison",
    "ConvergenceWarning",
    "CovarianceFamily",
    "DegenerateCovarianceError",
    "DiagCovariance",
    "Fit",
    "FullCovariance",
    "GaussianMixture",
    "KMeans",
    "MeanShift",
    "MiniBatchKMeans",
    "Prior",
    "Selection",
    "SphericalCovariance",
    "TiedCovariance",
    "as_data",
    "check_program",
    "compare",
    "compare_models",
    "estimate_bandwidth",
    "fit",
    "load",
    "select",
    "three_clusters",
]


def __getattr__(name):
    """``probmix.sklearn`` (the scikit-learn drop-in estimators) is imported on first use."""
    if name == "sklearn":
        import importlib

        return importlib.import_module("probmix.sklearn")
    raise AttributeError(f"module 'probmix' has no attribute {name!r}")
