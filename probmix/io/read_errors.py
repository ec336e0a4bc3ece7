"""The one shape of a data-file error: ``cannot read 'PATH': PROBLEM. FIX``."""

from __future__ import annotations

__all__ = ["fail", "one_line"]


def fail(path, problem: str, fix: str) -> ValueError:
    """The ValueError for ``path``, saying what is wrong and what to do."""
    return ValueError(f"cannot read {str(path)!r}: {problem}. {fix}")


def one_line(err) -> str:
    """An exception's message on one line, at most 200 characters."""
    return " ".join(str(err).split())[:200]
