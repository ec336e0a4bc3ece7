"""The estimator base of :mod:`probmix.sklearn`, with or without scikit-learn installed.

scikit-learn is not a dependency of probmix. When it is importable, the estimators inherit
``sklearn.base.BaseEstimator`` (so ``clone``, pipelines, grid search, tags and the HTML repr
work exactly as for scikit-learn's own estimators), raise ``sklearn.exceptions.NotFittedError``
and warn with a subclass of ``sklearn.exceptions.ConvergenceWarning``. Without it, a small
base gives the same ``get_params``/``set_params``/``repr`` contract, read from the signature
of ``__init__``, and the exceptions are probmix's own (same bases: ``ValueError`` and
``AttributeError``; ``UserWarning``).
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from probmix.exceptions import ConvergenceWarning as _ProbmixConvergenceWarning

__all__ = ["EstimatorBase", "NotFittedError", "ConvergenceWarning", "seed_from_random_state",
           "HAVE_SKLEARN"]

try:  # optional: only to be a first-class scikit-learn citizen when it is there
    from sklearn.base import BaseEstimator as _SklearnBase
    from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning
    from sklearn.exceptions import NotFittedError as _SklearnNotFittedError
    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised by the fallback test with sklearn hidden
    _SklearnBase = _SklearnConvergenceWarning = _SklearnNotFittedError = None
    HAVE_SKLEARN = False


class _ParamsBase:
    """``get_params``/``set_params``/``repr`` from the signature of ``__init__`` (no sklearn)."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters.values()
        return sorted(p.name for p in params
                      if p.name != "self" and p.kind != inspect.Parameter.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters and their values (``deep`` is accepted for scikit-learn
        compatibility; these estimators hold no sub-estimators)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters; an unknown name raises ``ValueError``. Returns self."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator "
                                 f"{type(self).__name__}. Valid parameters are: {valid!r}.")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in
                    inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (v is defaults.get(k) or (isinstance(v, (str, numbers.Number))
                                                    and v == defaults.get(k)))]
        return f"{type(self).__name__}({', '.join(changed)})"


EstimatorBase = _SklearnBase if HAVE_SKLEARN else _ParamsBase

if HAVE_SKLEARN:
    NotFittedError = _SklearnNotFittedError

    class ConvergenceWarning(_ProbmixConvergenceWarning, _SklearnConvergenceWarning):
        """A fit stopped at max_iter: caught by filters for probmix's or scikit-learn's class."""
else:  # pragma: no cover
    class NotFittedError(ValueError, AttributeError):
        """An estimator was used before ``fit`` (as scikit-learn's ``NotFittedError``)."""

    ConvergenceWarning = _ProbmixConvergenceWarning


def seed_from_random_state(random_state) -> int:
    """The explicit seed that scikit-learn's ``random_state`` stands for.

    An int is the seed itself (so every call gives the same result, as in scikit-learn); a
    ``numpy.random.RandomState`` or ``Generator`` is consumed to draw one (as scikit-learn
    consumes it); None draws a fresh seed from the operating system's entropy, never from a
    global random state.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be an int >= 0, a numpy RandomState or "
                             f"Generator, or None; got {random_state}.")
        return int(random_state)
    if random_state is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    raise TypeError(f"random_state must be an int >= 0, a numpy RandomState or Generator, or "
                    f"None; got {random_state!r} ({type(random_state).__name__}).")
