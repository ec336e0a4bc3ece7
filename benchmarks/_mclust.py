"""Run R's mclust through ``Rscript`` (shared by mclust_reference.py and bench_select.py).

R and mclust are needed only where these helpers run (a developer machine:
``apt-get install r-base-core r-cran-mclust``), never in CI. R code sent by
:func:`run_r` starts with :data:`R_HELPERS`, whose ``emit`` writes one result
per stdout line as ``key<TAB>type<TAB>value<TAB>value...`` (type ``n``:
numbers at 17 significant digits, so nothing is lost; ``s``: strings);
:func:`run_r` parses these lines into a dict.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

#: mclust's 14 multivariate covariance models, in mclust's own order.
MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
          "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")

#: Prepended to every script :func:`run_r` runs.
R_HELPERS = r"""
suppressPackageStartupMessages(library(mclust))
emit <- function(key, x) {
  if (is.null(x)) x <- NA
  if (is.numeric(x) || is.logical(x)) {
    v <- ifelse(is.na(x), "NA", sprintf("%.17g", as.numeric(x)))
    type <- "n"
  } else {
    v <- ifelse(is.na(x), "NA", as.character(x))
    type <- "s"
  }
  cat(key, "\t", type, "\t", paste(v, collapse = "\t"), "\n", sep = "")
}
"""


def r_literal(value) -> str:
    """Write a Python value as R source.

    Parameters
    ----------
    value : None, bool, int, float, str or a sequence of these
        A sequence becomes ``c(...)``; ``None`` becomes ``NULL``.

    Returns
    -------
    str
        R source text for the value.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid R escapes
    return "c(" + ", ".join(r_literal(v) for v in value) + ")"


def require_rscript() -> str:
    """Return the path of ``Rscript``; exit with a clear message when it is missing."""
    path = shutil.which("Rscript")
    if path is None:
        sys.exit("Rscript not found: this script needs R and mclust "
                 "(apt-get install -y r-base-core r-cran-mclust); CI uses the stored "
                 "tests/data/mclust_reference.json instead.")
    return path


def _parse_value(token: str, numeric: bool):
    if token == "NA":
        return None
    return float(token) if numeric else token


def run_r(code: str, timeout: float | None = None) -> dict[str, list]:
    """Run R code (after :data:`R_HELPERS`) with ``Rscript --vanilla``; parse what it emits.

    Parameters
    ----------
    code : str
        R code that reports results with ``emit(key, x)``.
    timeout : float, optional
        Seconds before the run is abandoned.

    Returns
    -------
    dict of str to list
        One list per emitted key: floats (numbers) or strings, ``None`` for NA.

    Raises
    ------
    RuntimeError
        When R exits with an error; the message holds R's stderr.
    """
    rscript = require_rscript()
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as f:
        f.write(R_HELPERS + code)
    try:
        proc = subprocess.run([rscript, "--vanilla", f.name], capture_output=True,
                              text=True, timeout=timeout)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed ({proc.returncode}):\n{proc.stderr}")
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[1] not in ("n", "s"):
            continue  # anything R printed besides emit()
        out[parts[0]] = [_parse_value(t, parts[1] == "n") for t in parts[2:]]
    return out


def mclust_call(models="all", ks=range(1, 10)) -> str:
    """R source of the ``Mclust(X, ...)`` call for the given models and K.

    ``models="all"`` leaves ``modelNames`` at mclust's default (all 14 models
    for multivariate data); ``ks`` becomes ``G``.
    """
    args = ["X", f"G = {r_literal(list(ks))}"]
    if models != "all":
        args.append(f"modelNames = {r_literal([models] if isinstance(models, str) else list(models))}")
    return "Mclust(" + ", ".join(args + ["verbose = FALSE"]) + ")"


def read_csv_code(csv_path: str, columns) -> str:
    """R source that reads ``csv_path`` (relative to the working directory) into ``data``
    and puts ``columns`` in the numeric matrix ``X``."""
    return (f"data <- read.csv({r_literal(csv_path)}, check.names = FALSE)\n"
            f"X <- data.matrix(data[, {r_literal(list(columns))}, drop = FALSE])\n"
            "storage.mode(X) <- \"double\"\n")


def timing_code(models="all", ks=range(1, 10), repeats: int = 1) -> str:
    """R source that times ``Mclust(X)`` (see :func:`mclust_call`) and emits its pick."""
    return f"""elapsed <- numeric({int(repeats)})
for (r in seq_along(elapsed)) elapsed[r] <- system.time(m <- {mclust_call(models, ks)})[["elapsed"]]
if (is.null(m)) stop("Mclust fitted no model")
emit("model", m$modelName); emit("k", m$G); emit("bic", m$bic); emit("loglik", m$loglik)
emit("df", m$df); emit("classification", m$classification); emit("elapsed", elapsed)
"""


def run_mclust(csv_path: str, columns, models="all", ks=range(1, 10), repeats: int = 1) -> dict:
    """Fit ``Mclust(X)`` in R on columns of a CSV file and time it.

    Parameters
    ----------
    csv_path : str
        CSV file with a header row.
    columns : sequence of str
        Columns that make up the data matrix ``X``.
    models : "all", str or sequence of str
        mclust model names; ``"all"`` is mclust's default (the 14 of :data:`MODELS`).
    ks : iterable of int
        Numbers of components tried (mclust's ``G``).
    repeats : int
        How many times ``Mclust`` is run and timed (R's ``system.time`` elapsed).

    Returns
    -------
    dict
        ``model`` (name chosen by BIC), ``k``, ``bic`` (mclust's sign: higher is
        better), ``loglik``, ``df``, ``classification`` (list of int in 1..k),
        ``elapsed`` (median seconds over the runs) and ``elapsed_all``.
    """
    r = run_r(read_csv_code(csv_path, columns) + timing_code(models, ks, repeats))
    return {
        "model": r["model"][0],
        "k": int(r["k"][0]),
        "bic": r["bic"][0],
        "loglik": r["loglik"][0],
        "df": int(r["df"][0]),
        "classification": [int(c) for c in r["classification"]],
        "elapsed": round(statistics.median(r["elapsed"]), 3),  # R's timer ticks in ms
        "elapsed_all": [round(t, 3) for t in r["elapsed"]],
    }
