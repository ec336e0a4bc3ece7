"""Feature names: read them from a DataFrame (or a CSV header) and check them at predict time.

As scikit-learn does: a fit on a DataFrame remembers its column names, and a DataFrame
given later to ``predict``/``score`` must have the same columns in the same order, since
a mixture reads columns by position and reordered columns would give silently wrong
answers. Arrays without names are taken as they are.
"""

from __future__ import annotations

__all__ = ["feature_names_of", "check_feature_names", "column_labels"]


def feature_names_of(x) -> list[str] | None:
    """The column names of a DataFrame-like ``x`` when they are all strings, else None."""
    columns = getattr(x, "columns", None)
    if columns is None or not hasattr(x, "iloc"):
        return None
    names = list(columns)
    return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None


def check_feature_names(expected: list[str] | None, x, *, name: str = "x") -> None:
    """Raise a ValueError when ``x`` has column names other than ``expected`` (or reordered).

    Parameters
    ----------
    expected : list of str or None
        The names the fit saw (None: the fit had none, nothing to check).
    x : array-like (N, D)
    name : str
        The argument's name, for the message.
    """
    got = feature_names_of(x)
    if expected is None or got is None or list(got) == list(expected):
        return
    if sorted(got) == sorted(expected):
        problem = "has the same columns in another order"
    else:
        missing = [c for c in expected if c not in got]
        extra = [c for c in got if c not in expected]
        problem = f"lacks {missing} and has {extra}" if missing else f"has extra columns {extra}"
    raise ValueError(
        f"{name} {problem}: the fit was made on columns {list(expected)}, {name} has {list(got)}. "
        f"Pass {name}[fit.feature_names] to use the fitted columns in their order."
    )


def column_labels(names, n_features: int) -> list[str]:
    """Names for D columns: the given ones, or "x1", "x2", ... when there are none."""
    if names is not None and len(names) == n_features:
        return [str(n) for n in names]
    return [f"x{j + 1}" for j in range(n_features)]
