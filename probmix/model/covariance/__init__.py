"""Covariance families of the Gaussian mixture: full, diag, spherical, tied.

Each family is a small object with one interface
(:class:`~probmix.model.covariance.base.CovarianceFamily`), used by the Pyro
program (prior and likelihood distributions), every engine (sufficient
statistics, the exponential-family natural weights, and the conjugate
posterior: its mode for EM, its expectations and KL for CAVI, its draws for
Gibbs and CAVI) and the result type (log-densities, parameter counts, units).
Nothing outside a family's own module branches on its name or type.

Modules
-------
base        the interface, and the generic conjugate methods built on ``family.conjugate``
conjugate   the Wishart and Gamma posteriors of the precision
matrix      helpers shared by the families with D×D covariances
full, tied, diag, spherical
            one family each

Adding a covariance family
--------------------------
Write one module (say ``banded.py``) with a subclass of ``CovarianceFamily`` (or
``MatrixFamily``): its name, its native shapes, features and scatter, its Pyro
prior and likelihood, and a ``conjugate`` precision posterior (reuse
``WishartPrecision``/``GammaPrecision``, or write a class with their methods);
then add one line below, ``register_family(BandedCovariance())`` (or call
:func:`register_family` from your own code). No engine needs to change.
"""

from __future__ import annotations

from probmix.model.covariance.base import CovarianceFamily, raise_if_degenerate
from probmix.model.covariance.diag import DiagCovariance
from probmix.model.covariance.full import FullCovariance
from probmix.model.covariance.parsimonious import NEW_MODELS, ParsimoniousCovariance
from probmix.model.covariance.registry import (ALIASES, FAMILIES, MCLUST_MODELS, get_family,
                                              mclust_name, register_family)
from probmix.model.covariance.spherical import SphericalCovariance
from probmix.model.covariance.tied import TiedCovariance

__all__ = ["CovarianceFamily", "FullCovariance", "DiagCovariance", "SphericalCovariance",
           "TiedCovariance", "ParsimoniousCovariance", "get_family", "register_family", "FAMILIES",
           "MCLUST_MODELS", "ALIASES", "mclust_name", "raise_if_degenerate"]

register_family(FullCovariance())
register_family(DiagCovariance())
register_family(SphericalCovariance())
register_family(TiedCovariance())
for _name in NEW_MODELS:  # mclust's ten other parsimonious models
    register_family(ParsimoniousCovariance(_name))
