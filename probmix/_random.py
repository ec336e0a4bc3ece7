"""Explicit randomness: every random draw in probmix comes from a seed passed in."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["seeded", "generator"]


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block (e.g. Pyro inference, which draws from torch's global RNG) under ``seed``.

    The global RNG state is saved before and restored after, so no state leaks out.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def generator(seed: int, device="cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))
