"""Reading a numeric CSV: the delimiter and decimal mark sniffed, a row-id column left out.

:func:`read_csv` looks at the first lines to choose the delimiter (``,``, ``;``, tab or
``|``: the one that splits the header into as many fields as most rows) and the decimal mark
(a comma when the delimiter is not one and the numbers are written ``1,5``), then parses the
file with pandas' C parser, whose memory is proportional to the file. A file that no
delimiter splits consistently is refused with the fix (``--delimiter``, ``--decimal``),
never read as one column of text. :func:`id_column` finds a leading column that numbers the
rows (R's and pandas' unnamed row names, consecutive integers from 0 or 1, or a column named
like ``id`` with distinct values), which the loader leaves out with a warning.
"""

from __future__ import annotations

import collections
import csv
import re

import numpy as np

from probmix.io.read_errors import fail, one_line

__all__ = ["read_csv", "numeric_frame", "id_column", "DELIMITERS"]

DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 1 << 16
_SNIFF_LINES = 50
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d*,\d+([eE][+-]?\d+)?\s*$")
_DECIMAL_POINT = re.compile(r"^\s*[+-]?\d*\.\d+([eE][+-]?\d+)?\s*$")
_ID_NAMES = re.compile(r"^(id|idx|index|row|row_?id|row_?names?|rownames|sample_?id|"
                       r"obs|observation)$", re.IGNORECASE)


def _fields(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:  # one field above csv's limit (131,072 characters): not this delimiter
        return [line]


def _sample_lines(path) -> list[str]:
    """The header, the first row (whole, however wide) and the rows in the next 64 KiB."""
    with open(path, "rb") as f:
        first = f.readline() + f.readline()
        raw = f.read(_SNIFF_BYTES)
        more = bool(f.read(1))
    lines = (first + raw).decode("utf-8-sig", errors="replace").splitlines()
    if more and raw and len(lines) > 2:
        lines = lines[:-1]  # the last line may be cut
    return [line for line in lines if line.strip()][:_SNIFF_LINES]


def _sniff_delimiter(path, lines: list[str]) -> str:
    header, rows = lines[0], lines[1:] or lines[:1]
    found = []
    for rank, d in enumerate(DELIMITERS):
        h = len(_fields(header, d))
        usual = collections.Counter(len(_fields(r, d)) for r in rows).most_common(1)[0][0]
        if h > 1 and h == usual:
            found.append((h, -rank, d))
    if found:
        return max(found)[2]
    for d in DELIMITERS:
        usual = collections.Counter(len(_fields(r, d)) for r in rows).most_common(1)[0][0]
        if usual > 1:
            raise fail(path, f"its header has 1 field but its rows have {usual} when split at "
                       f"{d!r}, so no delimiter splits header and rows alike",
                       "If it uses decimal commas (1,5) pass --delimiter ';' --decimal ',' "
                       "(delimiter=';', decimal=','); else pass the --delimiter it uses")
    return ","  # one column


def _sniff_decimal(lines: list[str], delimiter: str) -> str:
    if delimiter == ",":
        return "."
    cells = [c for line in lines[1:] for c in _fields(line, delimiter)]
    comma = any(_DECIMAL_COMMA.match(c) for c in cells)
    point = any(_DECIMAL_POINT.match(c) for c in cells)
    return "," if comma and not point else "."


def read_csv(path, *, delimiter: str | None = None, decimal: str | None = None):
    """(frame, names): the table of a CSV with a header row (see the module)."""
    import pandas as pd

    try:
        lines = _sample_lines(path)
    except OSError as err:
        raise fail(path, f"it cannot be opened ({one_line(err)})", "Check the path and its "
                   "permissions") from None
    if not lines:
        raise fail(path, "the file is empty", "A CSV needs a header row and one row per point")
    if "\x00" in "".join(lines):
        raise fail(path, "it is a binary file, not text", "Pass a CSV text file, or save the "
                   "array with numpy.save and pass the .npy")
    delimiter = _sniff_delimiter(path, lines) if delimiter is None else delimiter
    decimal = _sniff_decimal(lines, delimiter) if decimal is None else decimal
    try:
        frame = pd.read_csv(path, sep=delimiter, decimal=decimal, skipinitialspace=True,
                            encoding="utf-8-sig", index_col=False, engine="c")
    except pd.errors.EmptyDataError:
        raise fail(path, "the file is empty", "A CSV needs a header row and one row per point")
    except UnicodeDecodeError as err:
        raise fail(path, f"it is not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                   f"{err.start})", "Save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)"
                   ) from None
    except Exception as err:  # parser errors, csv.Error, ...
        raise fail(path, f"not a readable CSV with delimiter {delimiter!r} and decimal mark "
                   f"{decimal!r} ({type(err).__name__}: {one_line(err)})",
                   "Pass the --delimiter and --decimal it uses") from None
    names = [str(c).strip() for c in frame.columns]
    if all(_is_number(n) for n in names):
        raise fail(path, f"its first row ({', '.join(names)[:40]}) is numbers, not a header",
                   "Add a header row naming the columns, e.g. x,y")
    unnamed = [i for i, n in enumerate(names) if n.startswith("Unnamed:") or not n]
    if unnamed == [0] and len(names) > 1:
        names[0] = ""  # row names (R's write.csv, pandas' to_csv): see id_column
    elif unnamed:
        raise fail(path, f"the header has {len(unnamed)} empty column name(s)",
                   "Name every column in the header row")
    if len(set(names)) != len(names):
        raise fail(path, "the header repeats a column name", "Give every column its own name")
    if len(frame) == 0:
        raise fail(path, "it has a header but no data rows", "Add one row per point")
    frame.columns = names
    return frame, names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def id_column(frame, names: list[str]) -> tuple[str, str] | None:
    """(name, why) when the first of ``names`` numbers the rows rather than measuring them."""
    if len(names) < 2:
        return None
    name = names[0]
    col = frame[name]
    if name == "":
        return name, "an unnamed first column: row names, as R's write.csv and pandas' to_csv " \
                     "write them"
    values = col.to_numpy()
    if col.dtype.kind in "iu" or (col.dtype.kind == "f" and np.isfinite(values).all()
                                  and (values == np.round(values)).all()):
        if len(values) > 2 and values[0] in (0, 1) and (np.diff(values) == 1).all():
            return name, f"consecutive integers {values[0]:.0f}..{values[-1]:.0f}"
    if _ID_NAMES.match(name) and col.nunique(dropna=False) == len(col):
        return name, "named like an id, with a distinct value on every row"
    return None


def numeric_frame(path, frame, names: list[str]) -> np.ndarray:
    """The columns ``names`` of ``frame`` as float64 (N, D); text columns are named."""
    import pandas as pd

    bad = []
    columns = []
    for name in names:
        col = frame[name]
        if col.dtype.kind in "biuf":
            columns.append(col.to_numpy(dtype=np.float64))
            continue
        values = pd.to_numeric(col, errors="coerce")  # text -> NaN, to name the column below
        text = values.isna() & col.notna() & (col.astype(str).str.strip() != "")
        if bool(text.any()):
            first = int(np.flatnonzero(text.to_numpy())[0])
            bad.append(f"{name!r} (line {first + 2}: {str(col.iloc[first])[:20]!r})")
        else:
            columns.append(values.to_numpy(dtype=np.float64))
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise fail(path, f"{len(bad)} non-numeric column(s): {shown}",
                   "Pick the numeric columns with --columns a,b (columns=[...]) or leave "
                   "some out with --exclude (exclude=[...])")
    return np.stack(columns, axis=1)
