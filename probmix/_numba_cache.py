"""Keep numba's on-disk cache of a kernel honest about the kernels it calls.

numba keys a cached kernel on its own source file alone, but the cached machine code also
holds every kernel it calls: after an edit to a callee's file (a development checkout, not
an installed release, whose files all change together) the caller would load code
compiled against the callee's old version. :func:`drop_stale` empties a kernel's cache when
any module it depends on is newer than the cache.
"""

from __future__ import annotations

import os

__all__ = ["drop_stale"]


def drop_stale(dispatcher, *modules) -> bool:
    """Empty ``dispatcher``'s cache if a source file of ``modules`` (or its own) is newer than
    its cache index; returns whether it did. Uses numba's cache internals: if they change,
    nothing is dropped."""
    try:
        cache_file = dispatcher._cache._cache_file
        index = cache_file._index_path
        if not os.path.exists(index):
            return False
        sources = [dispatcher.py_func.__code__.co_filename] + [m.__file__ for m in modules]
        if max(os.path.getmtime(path) for path in sources) <= os.path.getmtime(index):
            return False
        dispatcher._cache.flush()
        return True
    except Exception:  # noqa: BLE001 - numba internals moved: keep numba's own behaviour
        return False
