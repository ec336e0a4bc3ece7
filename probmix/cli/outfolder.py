"""The ``--out`` folder of a command: checked before any work, written atomically, with a
manifest of the run's files.

Each file replaces its old version in one rename (:func:`probmix.io.atomic.replaced`), so a
full disk or a kill leaves the previous file whole. ``probmix-manifest.json`` lists what the
last run wrote; the next run into the same folder removes the files of the previous run that
it did not write again (an MCMC run's ``arviz.nc`` and ``trace.png`` after a MAP run), and
nothing else: files probmix did not write are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from probmix.io.atomic import replaced

__all__ = ["OutputFolder", "MANIFEST"]

MANIFEST = "probmix-manifest.json"


class OutputFolder:
    """Where a command writes; made (and checked writable) when constructed.

    Parameters
    ----------
    path : str or os.PathLike
        The ``--out`` folder (created with its parents if missing).
    command : str
        The command writing there, recorded in the manifest.

    Raises
    ------
    ValueError
        ``path`` is a file, or a folder this process cannot write to.
    """

    def __init__(self, path, command: str):
        self.path = Path(path)
        self.command = command
        self.written: list[str] = []
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"--out {os.fspath(path)!r} is a file; pass a folder (it is created "
                             "if missing).")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with replaced(self.path / ".probmix-write-check") as tmp:
                open(tmp, "wb").close()
                raise _Probe  # a temporary file was creatable; nothing is left behind
        except _Probe:
            pass
        except OSError as err:
            raise ValueError(f"--out {os.fspath(path)!r} cannot be written ({err.strerror or err});"
                             " pass a folder you can write to.") from None

    def write(self, name: str, writer) -> None:
        """Write the file ``name``: ``writer(tmp_path)`` writes it, then it replaces the old one."""
        with replaced(self.path / name) as tmp:
            writer(tmp)
        self.written.append(name)

    def write_text(self, name: str, text: str) -> None:
        """Write ``text`` (UTF-8) as the file ``name``."""
        self.write(name, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def figure(self, fig, name: str) -> None:
        """Write the matplotlib figure ``fig`` as the PNG ``name``."""
        self.write(name, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))

    def finish(self) -> str:
        """Write the manifest, remove the previous run's files not written again; a summary."""
        previous = self._previous()
        self.write_text(MANIFEST, json.dumps({"command": self.command,
                                              "files": self.written[:]}, indent=2))
        self.written.pop()
        removed = sorted(set(previous) - set(self.written) - {MANIFEST})
        for name in removed:
            with contextlib.suppress(OSError):
                os.unlink(self.path / name)
        line = f"wrote {', '.join(self.written)} to {self.path}"
        if removed:
            line += f" (removed the previous run's {', '.join(removed)})"
        return line

    def _previous(self) -> list[str]:
        """The files the manifest of the previous run lists (plain names in this folder)."""
        try:
            listed = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        if not isinstance(listed, list):
            return []
        return [n for n in listed if isinstance(n, str) and n == os.path.basename(n)
                and n not in ("", ".", "..")]


class _Probe(Exception):
    pass
