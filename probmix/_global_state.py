"""One lock around the process-wide state that Pyro inference uses.

Pyro keeps three things per process, not per call: the stack of effect handlers every
``pyro.sample`` statement consults, the parameter store, and (through probmix's
:func:`~probmix._random.seeded`) torch's global random generator. Two fits running in two
threads would see each other's sample sites ("Multiple sample sites named 'weights'") and
draw from each other's random streams (silently different results). probmix therefore runs
every piece of code that touches that state (the Pyro engines: SVI, NUTS and gradient MAP;
seeded sampling; tracing a custom program) under :data:`PYRO_LOCK`, a re-entrant lock: such
fits run one at a time across threads, and each gives exactly what it gives alone. The
closed-form engines (EM, CAVI, Gibbs) and the baselines use their own generators and no
Pyro state, and run concurrently.
"""

from __future__ import annotations

import functools
import threading

__all__ = ["PYRO_LOCK", "holds_pyro_lock"]

PYRO_LOCK = threading.RLock()


def holds_pyro_lock(function):
    """Decorator: run ``function`` under :data:`PYRO_LOCK`."""

    @functools.wraps(function)
    def locked(*args, **kwargs):
        with PYRO_LOCK:
            return function(*args, **kwargs)

    return locked
