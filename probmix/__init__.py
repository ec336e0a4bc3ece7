"""probmix: Bayesian mixture models as Pyro programs with interchangeable engines."""

from probmix.data import as_data
from probmix.exceptions import ConvergenceWarning, DegenerateCovarianceError

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DegenerateCovarianceError",
    "as_data",
]
