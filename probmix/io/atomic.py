"""Replacing a file atomically: a temporary file beside it, fsync, then one rename.

Every file probmix writes (saved fits, the CLI's outputs) goes through :func:`replaced`, so a
crash, a full disk or a kill never leaves half a file: readers see the old file or the new
one. The rename replaces the *target* of a symbolic link (the link stays), an existing file
keeps its permission bits (a 0600 file holding raw data stays 0600), and the temporary files
that a killed writer left behind are removed by the next write of the same file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time

__all__ = ["replaced", "TEMP_SUFFIX"]

TEMP_SUFFIX = ".probmix-tmp"
_LEGACY_AGE_S = 3600.0  # temporaries of earlier probmix versions (no pid): removed after 1 h


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or not a pid: leave it
    return True


def _remove_stale(folder: str, name: str) -> None:
    """Delete temporaries of ``name`` whose writer is dead (``.{name}.{pid}.{hex}.probmix-tmp``)
    and, after an hour, those of earlier versions (``.{name}.{random}.tmp``)."""
    prefix = f".{name}."
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        rest = entry.name[len(prefix):]
        if not entry.name.startswith(prefix) or not entry.is_file(follow_symlinks=False):
            continue
        if rest.endswith(TEMP_SUFFIX):
            pid = rest.split(".", 1)[0]
            stale = pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid))
        elif rest.endswith(".tmp") and "." not in rest[:-4]:
            with contextlib.suppress(OSError):
                stale = now - entry.stat(follow_symlinks=False).st_mtime > _LEGACY_AGE_S
        else:
            continue
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


@contextlib.contextmanager
def replaced(path):
    """Context manager: yields a temporary path to write; on success it replaces ``path``.

    The temporary file is fsynced before the rename and the folder after it. When the block
    raises, the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The file to replace (or create). A symbolic link is followed: its target is replaced.

    Yields
    ------
    str
        Where to write the new content (in the same folder, so the rename is atomic).
    """
    target = os.path.realpath(os.fspath(path))
    folder, name = os.path.split(target)
    _remove_stale(folder, name)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself durable (not on every platform)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
