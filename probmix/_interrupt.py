"""A one-line message, not a traceback, when the ``probmix`` command is interrupted early.

The console script imports the package (torch, Pyro: about a second) before
:func:`probmix.cli.app.main` can catch anything, so a Ctrl-C in that second printed a
50-line import traceback. When the running program is the ``probmix`` console script (and
only then), an uncaught KeyboardInterrupt is reported as ``probmix: interrupted``; every
other exception, and every other program importing probmix, keeps Python's usual report.
"""

from __future__ import annotations

import os
import sys

__all__ = ["install"]

_SCRIPT_NAMES = ("probmix", "probmix.exe", "probmix-script.py")


def install() -> None:
    """Wrap ``sys.excepthook`` for the console script (idempotent)."""
    if os.path.basename(sys.argv[0] if sys.argv else "") not in _SCRIPT_NAMES:
        return
    previous = sys.excepthook
    if getattr(previous, "_probmix", False):
        return

    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            print("probmix: interrupted", file=sys.stderr)
            return
        previous(kind, value, traceback)

    hook._probmix = True
    sys.excepthook = hook
