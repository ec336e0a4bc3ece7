"""probmix: Bayesian mixture models as Pyro programs with interchangeable engines.

Declare a model (:class:`GaussianMixture`, or any Pyro mixture program), then
infer with :func:`fit`; every engine returns a :class:`Fit`.
"""

from probmix.compare import Comparison, compare
from probmix.covariance import (CovarianceFamily, DiagCovariance, FullCovariance,
                                SphericalCovariance, TiedCovariance)
from probmix.data import as_data
from probmix.datasets import three_clusters
from probmix.exceptions import ConvergenceWarning, DegenerateCovarianceError
from probmix.fit import fit
from probmix.gaussian_mixture import GaussianMixture
from probmix.kmeans import KMeans
from probmix.kmeans_streaming import MiniBatchKMeans
from probmix.meanshift import MeanShift, estimate_bandwidth
from probmix.persistence import load
from probmix.priors import Prior
from probmix.program_check import check_program
from probmix.result import Fit
from probmix.selection import Selection, compare_models, select

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
