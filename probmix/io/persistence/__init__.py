"""Saving and loading fits and baselines: plain arrays plus a JSON header, never code.

:mod:`~probmix.io.persistence.format` reads and writes the file format (an ``.npz`` of
arrays with a JSON header; see its docstring); :mod:`~probmix.io.persistence.registry` maps
the names in a file to the classes that registered themselves (Fit, KMeans, MeanShift, the
GaussianMixture declaration, Prior). Loading never executes anything from the file.
"""

from __future__ import annotations

from probmix.io.persistence.format import FORMAT, FORMAT_VERSION, SavedFileError, UnsavedValue
from probmix.io.persistence.format import write as _write  # noqa: F401  (the tests' crash probe)
from probmix.io.persistence.registry import (AttributeState, LoadContext, SavedProgram, State,
                                             load, load_as, register, save)

__all__ = ["FORMAT", "FORMAT_VERSION", "SavedFileError", "SavedProgram", "UnsavedValue",
           "AttributeState", "LoadContext", "State", "register", "load", "load_estimator",
           "save", "save_estimator", "save_fit"]


def save_fit(fit, path) -> None:
    """Write a :class:`~probmix.Fit` to ``path`` (see :func:`save`)."""
    save(fit, path)


def save_estimator(estimator, path) -> None:
    """Write a KMeans or MeanShift (its settings and, if fitted, its fitted state) to ``path``."""
    save(estimator, path)


def load_estimator(cls, path, *, device=None):
    """Read a KMeans or MeanShift saved by ``save``; ``cls`` is the class asked for."""
    return load_as(cls, path, device=device)
