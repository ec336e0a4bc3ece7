"""scikit-learn drop-in estimators: change the import, keep the script.

>>> from probmix.sklearn import GaussianMixture            # was: from sklearn.mixture import ...
>>> from probmix.sklearn import BayesianGaussianMixture    # doctest: +SKIP

Same constructor parameters, fitted attributes and methods as ``sklearn.mixture``, plus
``device=``/``dtype=`` and ``result_`` (the :class:`probmix.Fit` behind the estimator).
scikit-learn is optional: when it is installed the estimators are real scikit-learn
estimators (``sklearn.base.BaseEstimator``: clone, pipelines, grid search); without it they
keep the same ``get_params``/``set_params`` contract (see :mod:`probmix.sklearn._base`).
``probmix.KMeans`` and ``probmix.MeanShift`` already carry scikit-learn's names.
"""

from probmix.sklearn._base import ConvergenceWarning, NotFittedError
from probmix.sklearn.bayesian_mixture import BayesianGaussianMixture
from probmix.sklearn.gaussian_mixture import GaussianMixture

__all__ = ["BayesianGaussianMixture", "ConvergenceWarning", "GaussianMixture", "NotFittedError"]
