"""Thread count for Pyro engines: one thread on small problems, where two threads thrash."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["threads_for"]

_SMALL = 2_000_000  # N · D · K below which one thread is faster on a 2-core machine


@contextlib.contextmanager
def threads_for(n_values: int):
    """Run a block with one torch thread when ``n_values`` (≈ N · D · K) is small.

    The previous thread count is restored afterwards.
    """
    before = torch.get_num_threads()
    if n_values < _SMALL and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
