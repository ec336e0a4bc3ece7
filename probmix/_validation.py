"""Checks of scalar options, shared by every estimator and engine.

A wrong type raises ``TypeError``, a wrong value ``ValueError``; both name the option.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_float", "check_seed"]


def check_int(value, name: str, *, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r} "
                        f"({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}.")
    return int(value)


def check_float(value, name: str, *, minimum: float) -> float:
    """Return ``value`` as a float if it is a finite number >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number >= {minimum}; got {value!r} "
                        f"({type(value).__name__}).")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}; got {value!r}.")
    return float(value)


def check_seed(seed):
    """Return ``seed`` as an int (or None), else raise a TypeError."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None; got {seed!r} ({type(seed).__name__}). "
                        "Pass an integer such as seed=0 for reproducible results.")
    return None if seed is None else int(seed)
