"""Explicit randomness: every random draw in probmix comes from a seed passed in."""

from __future__ import annotations

import contextlib
import secrets
import warnings

import torch

from probmix._global_state import PYRO_LOCK

__all__ = ["seeded", "generator", "quiet_singular_samples", "resolve_seed", "torch_seed"]


def resolve_seed(seed) -> int:
    """The seed an engine runs with: ``seed`` itself, or fresh OS entropy when it is None.

    Engines record the returned int in ``fit.options["seed"]``, so a fit made with
    ``seed=None`` can be reproduced by passing that value.
    """
    from probmix._validation import check_int

    if seed is None:
        return secrets.randbits(32)  # fits torch's and NumPy's seeds, with room for seed + r
    return check_int(seed, "seed", minimum=0)


def torch_seed(seed: int) -> int:
    """``seed`` as torch takes it (below 2**63): any Python int is a valid probmix seed."""
    return int(seed) % 2**63


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block (e.g. Pyro inference, which draws from torch's global RNG) under ``seed``.

    The global RNG state is saved before and restored after, so no state leaks out; the block
    holds :data:`probmix._global_state.PYRO_LOCK`, so no other thread draws from it meanwhile.
    """
    with PYRO_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(seed))
        yield


def generator(seed: int | None, device="cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (a fresh random seed when None)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(torch_seed(seed))
    return gen


@contextlib.contextmanager
def quiet_singular_samples():
    """Silence torch's "Singular sample detected" note from Wishart draws it already corrected."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Singular sample detected")
        yield
