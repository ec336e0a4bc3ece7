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
from probmix.model.covariance.spherical import SphericalCovariance
from probmix.model.covariance.tied import TiedCovariance

__all__ = ["CovarianceFamily", "FullCovariance", "DiagCovariance", "SphericalCovariance",
           "TiedCovariance", "get_family", "register_family", "FAMILIES", "raise_if_degenerate"]

#: the registered families by name
FAMILIES: dict[str, CovarianceFamily] = {}


def register_family(family: CovarianceFamily) -> CovarianceFamily:
    """Make ``family`` known by its name to :func:`get_family` (and ``covariance="<name>"``).

    Parameters
    ----------
    family : CovarianceFamily
        An instance; its ``name`` must not be registered yet.

    Returns
    -------
    CovarianceFamily
        ``family``.
    """
    if not isinstance(family, CovarianceFamily):
        raise TypeError(f"family must be a CovarianceFamily instance; got {type(family).__name__}.")
    if family.name in FAMILIES:
        raise ValueError(f"a covariance family named {family.name!r} is already registered.")
    FAMILIES[family.name] = family
    return family


register_family(FullCovariance())
register_family(DiagCovariance())
register_family(SphericalCovariance())
register_family(TiedCovariance())


def get_family(covariance) -> CovarianceFamily:
    """Look up a family by name ('full', 'diag', 'spherical', 'tied') or pass one through."""
    if isinstance(covariance, CovarianceFamily):
        return covariance
    if covariance not in FAMILIES:
        raise ValueError(
            f"covariance must be one of {sorted(FAMILIES)}; got {covariance!r}."
        )
    return FAMILIES[covariance]
