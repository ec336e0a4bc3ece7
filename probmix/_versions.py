"""The versions of probmix and its numerical dependencies, recorded in every result."""

from __future__ import annotations

import functools
import platform
import sys

__all__ = ["runtime_versions"]


@functools.lru_cache(maxsize=1)
def _versions() -> tuple:
    import numpy
    import pyro
    import torch

    probmix = sys.modules.get("probmix")
    return (("probmix", getattr(probmix, "__version__", "unknown")),
            ("torch", str(torch.__version__)), ("pyro", str(pyro.__version__)),
            ("numpy", str(numpy.__version__)), ("python", platform.python_version()))


def runtime_versions() -> dict:
    """A new dict of the running probmix, torch, pyro, numpy and python versions (str)."""
    return dict(_versions())
