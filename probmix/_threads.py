"""Thread count for Pyro engines: one thread on small problems, where two threads thrash."""

from __future__ import annotations

import contextlib
import threading

import torch

__all__ = ["threads_for"]

_SMALL = 2_000_000  # N · D · K below which one thread is faster on a 2-core machine


_LOCK = threading.Lock()
_ACTIVE = [0, None]  # blocks inside threads_for, and the thread count before the first


@contextlib.contextmanager
def threads_for(n_values: int):
    """Run a block with one torch thread when ``n_values`` (≈ N · D · K) is small.

    The thread count is process-wide: blocks in several threads share one setting, made by
    the first to enter and restored by the last to leave (a small problem entering while a
    large one runs does not take its threads away; only the first block decides).
    """
    with _LOCK:
        if _ACTIVE[0] == 0:
            _ACTIVE[1] = torch.get_num_threads()
            if n_values < _SMALL and _ACTIVE[1] > 1:
                torch.set_num_threads(1)
        _ACTIVE[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE[0] -= 1
            if _ACTIVE[0] == 0:
                torch.set_num_threads(_ACTIVE[1])
