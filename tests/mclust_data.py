"""The public data sets of tests/data with R's mclust results on them
(mclust_reference.json, made by benchmarks/mclust_reference.py), shared by the tests
(imported as ``mclust_data``)."""

import csv
import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
#: mclust's results: ``REFERENCE["datasets"][name]`` per data set (its CSV, columns, picks)
REFERENCE = json.loads((DATA / "mclust_reference.json").read_text())


def load(name: str):
    """(x, entry): a data set's feature columns, float64 (N, D) (not its ``class`` column),
    and its entry of :data:`REFERENCE`."""
    entry = REFERENCE["datasets"][name]
    with open(DATA / Path(entry["csv"]).name) as f:
        rows = list(csv.DictReader(f))
    assert "class" not in entry["columns"]
    return np.array([[float(r[c]) for c in entry["columns"]] for r in rows]), entry
