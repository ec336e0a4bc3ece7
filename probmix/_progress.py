"""Progress reporting that suits where the output goes.

On a terminal (or in a notebook) a tqdm bar; anywhere else (a log file, CI, a pipe) one
line when a long step starts and one when it ends, instead of thousands of ``\\r``
updates. Every engine asks :func:`progress_bar` for its bar.
"""

from __future__ import annotations

import sys
import time

__all__ = ["progress_bar"]


def _interactive() -> bool:
    """Whether bars can redraw in place: stderr is a terminal, or tqdm.auto found a notebook."""
    from tqdm.auto import tqdm as auto

    notebook = sys.modules.get("tqdm.notebook")  # tqdm.auto imports it only in a notebook
    if notebook is not None and issubclass(auto, notebook.tqdm_notebook):
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class LineReporter:
    """The part of tqdm's interface the engines use, writing a start and an end line.

    Parameters
    ----------
    iterable : iterable, optional
        Iterated through, as ``tqdm(iterable)``.
    total : int, optional
        Number of updates expected (said on the start line).
    desc : str
        Name of the step.
    unit : str
        What an update counts.
    at_most : bool
        ``total`` is a limit (an iteration cap), not the count.
    """

    def __init__(self, iterable=None, *, total=None, desc="", unit="it", at_most=False):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = 0
        self._postfix = ""
        self._start = time.perf_counter()
        self._closed = False
        cap = "at most " if at_most else ""
        of = f" ({cap}{self._count(total)})" if total is not None else ""
        self._write(f"{desc}: started{of}")

    def _count(self, n: int) -> str:
        plural = "s" if n != 1 and self.unit != "it" and not self.unit.endswith("s") else ""
        return f"{n} {self.unit}{plural}"

    def _write(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        seconds = time.perf_counter() - self._start
        post = f", {self._postfix}" if self._postfix else ""
        self._write(f"{self.desc}: done, {self._count(self.n)} in {seconds:.1f} s{post}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress_bar(iterable=None, *, enabled: bool, desc: str, total: int | None = None,
                 unit: str = "it", at_most: bool = False):
    """A tqdm bar on a terminal, a :class:`LineReporter` elsewhere, a silent bar when off.

    Parameters
    ----------
    iterable : iterable, optional
    enabled : bool
        Whether the caller asked for progress (the engines' ``progress=``).
    desc : str
    total : int, optional
    unit : str
    at_most : bool
        ``total`` is an iteration cap (EM, CAVI): said so on the start line of a log.

    Returns
    -------
    An object with tqdm's ``update``, ``set_postfix``, ``set_description``, ``close``,
    ``n`` and iteration.
    """
    from tqdm.auto import tqdm

    if not enabled:
        return tqdm(iterable, total=total, desc=desc, disable=True)
    if _interactive():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
    return LineReporter(iterable, total=total, desc=desc, unit=unit, at_most=at_most)
