"""The registry of covariance families: name -> family, and mclust's names for them.

Families register themselves here (see :mod:`probmix.model.covariance`); it imports no
family, so any family module may look others up through it.
"""

from __future__ import annotations

from probmix.model.covariance.base import CovarianceFamily
from probmix.model.covariance_names import ALIASES, MCLUST_MODELS

__all__ = ["FAMILIES", "ALIASES", "MCLUST_MODELS", "register_family", "get_family", "mclust_name"]

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



def get_family(covariance) -> CovarianceFamily:
    """Look up a family by name (mclust's 14, or 'full', 'diag', 'spherical', 'tied'), or pass
    a CovarianceFamily through."""
    if isinstance(covariance, CovarianceFamily):
        return covariance
    name = ALIASES.get(covariance, covariance) if isinstance(covariance, str) else covariance
    if name not in FAMILIES:
        raise ValueError(
            f"covariance must be one of mclust's names {list(MCLUST_MODELS)} or "
            f"{sorted(set(FAMILIES) - set(MCLUST_MODELS))}; got {covariance!r}."
        )
    return FAMILIES[name]


def mclust_name(family: CovarianceFamily) -> str:
    """mclust's three-letter name of a registered family (its own name for others)."""
    return {v: k for k, v in ALIASES.items()}.get(family.name, family.name)
