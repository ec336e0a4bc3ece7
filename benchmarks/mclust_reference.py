"""Write R mclust's results on five public data sets to tests/data/ for CI, which has no R.

Usage::

    python benchmarks/mclust_reference.py

Needs ``Rscript`` with the R packages mclust and gclus (``apt-get install -y
r-base-core r-cran-mclust r-cran-gclus``); exits with a message when Rscript
is missing. It

1. exports faithful, iris (R datasets), wine (gclus), banknote and diabetes
   (mclust) to ``tests/data/<name>.csv``: numeric columns at full precision
   (shortest text that reads back to the same double, checked in R), then the
   known class as the last column ``class`` (none for faithful);
2. for each data set, reading the CSV back in R, runs
   ``Mclust(X, G = k, modelNames = model)`` for the 14 models and k = 1..9,
   with and without ``prior = priorControl()``; the default ``Mclust(X)``
   (its pick, parameters, classification, ICL pick, ARI against the class)
   and the model-based hierarchical (``hc``) partition into 3 groups that
   initialises EM;
3. times ``Mclust(X)`` with :func:`_mclust.run_mclust` (median of 3 runs);
4. writes it all, with the R code and the R and mclust versions, to
   ``tests/data/mclust_reference.json``.
"""

from __future__ import annotations

import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _mclust import MODELS, R_HELPERS, r_literal, read_csv_code, require_rscript, run_mclust, \
    run_r, timing_code  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "tests/data"  # relative to ROOT, so no machine's paths end up in the JSON
KS = range(1, 10)
REPEATS = 3

#: name -> (R package holding the data frame of that name, its class column or None).
DATASETS = {
    "faithful": ("datasets", None),
    "iris": ("datasets", "Species"),
    "wine": ("gclus", "Class"),  # mclust 6.0.0 ships no wine; its examples use gclus's
    "banknote": ("mclust", "Status"),
    "diabetes": ("mclust", "class"),
}

EXPORT_CODE_TEMPLATE = r"""
load_data <- function(name, package) {
  e <- new.env()
  data(list = name, package = package, envir = e)
  e[[name]]
}
shortest <- function(x) {  # fewest digits (15..17) that read back as the same double
  out <- sprintf("%.17g", x)
  for (d in 16:15) {
    s <- sprintf(paste0("%.", d, "g"), x)
    ok <- as.numeric(s) == x
    out[ok] <- s[ok]
  }
  out
}
export <- function(df, class_col, path) {
  num <- setdiff(names(df), class_col)
  out <- as.data.frame(lapply(df[num], shortest), check.names = FALSE)
  if (!is.null(class_col)) {
    cl <- df[[class_col]]
    out$class <- if (is.numeric(cl)) as.integer(cl) else as.character(cl)
  }
  write.csv(out, path, row.names = FALSE, quote = FALSE)
  back <- read.csv(path, check.names = FALSE)
  stopifnot(identical(names(back), names(out)),
            all(data.matrix(back[num]) == data.matrix(df[num])))
  emit(paste0(path, ".columns"), num)
}
@CALLS@
emit("R", R.version.string)
emit("mclust", as.character(packageVersion("mclust")))
emit("gclus", as.character(packageVersion("gclus")))
emit("blas", extSoftVersion()[["BLAS"]])
emit("hcUse", mclust.options("hcUse"))
emit("hcModelName", mclust.options("hcModelName"))
emit("subset", mclust.options("subset"))
emit("emModelNames", mclust.options("emModelNames"))
"""

# Runs after read_csv_code, which defines `data` and `X`.
REFERENCE_CODE_TEMPLATE = r"""for (mn in @MODELS@) {
  # mclustBIC drops some models (EVE, VEE, VVE, EVV in mclust 6.0.0) when given a prior
  prior_ok <- ncol(mclustBIC(X, G = 1, modelNames = mn, prior = priorControl(), verbose = FALSE)) > 0
  emit(paste0("prior.", mn, ".supported"), prior_ok)
  for (k in @KS@) for (with_prior in c(FALSE, if (prior_ok) TRUE)) {
    key <- paste(if (with_prior) "prior" else "grid", mn, k, sep = ".")
    prior <- if (with_prior) priorControl() else NULL
    m <- if (with_prior) Mclust(X, G = k, modelNames = mn, prior = priorControl(), verbose = FALSE)
         else Mclust(X, G = k, modelNames = mn, verbose = FALSE)
    if (is.null(m)) {  # mclust fitted nothing: ask mclustBIC for its return code
      b <- mclustBIC(X, G = k, modelNames = mn, prior = prior, verbose = FALSE)
      emit(paste0(key, ".rc"), attr(b, "returnCodes")[1, 1])
      next
    }
    emit(paste0(key, ".rc"), attr(m$BIC, "returnCodes")[1, 1])
    emit(paste0(key, ".fit"), c(m$loglik, m$bic, m$df))
    if (k > 1 && !with_prior) {  # Mclust keeps no iteration count: rerun its EM from its start
      z <- unmap(hclass(attr(m$BIC, "initialization")$hcPairs, k))
      o <- me(X, modelName = mn, z = z)
      emit(paste0(key, ".its"), if (identical(o$loglik, m$loglik)) attr(o, "info")[[1]] else NA)
    }
  }
}

m <- Mclust(X, verbose = FALSE)
emit("best.model", m$modelName)
emit("best.fit", c(m$G, m$bic, m$loglik, m$df, m$icl))
emit("best.classification", m$classification)
emit("best.pro", m$parameters$pro)
emit("best.mean", m$parameters$mean)                          # D x K: flat = row-major (K, D)
emit("best.sigma", aperm(m$parameters$variance$sigma, c(2, 1, 3)))  # flat = row-major (K, D, D)
if (!is.null(data$class)) emit("best.ari", adjustedRandIndex(m$classification, data$class))

icl <- mclustICL(X, verbose = FALSE)
b <- which.max(icl)
emit("icl.model", colnames(icl)[col(icl)[b]])
emit("icl.fit", c(as.numeric(rownames(icl)[row(icl)[b]]), icl[b]))
emit("icl.summary", names(summary(icl))[1])

hp <- hc(X, modelName = mclust.options("hcModelName"), use = mclust.options("hcUse"))
emit("hc.partition", hclass(hp, 3))
emit("hc.same_as_Mclust", identical(hclass(hp, 3),
                                    hclass(attr(m$BIC, "initialization")$hcPairs, 3)))
"""
REFERENCE_CODE = (REFERENCE_CODE_TEMPLATE.replace("@MODELS@", r_literal(MODELS))
                  .replace("@KS@", r_literal(list(KS))))

NOTES = [
    "bic is mclust's: 2 loglik - df log(n), higher is better.",
    "grid.<model>: lists over k = 1..9; null where Mclust(X, G = k, modelNames = model) "
    "returned NULL. return_code is mclust's (attr(mclustBIC, 'returnCodes'), see its "
    "me<model>() functions): 0 fine, 1 iteration limit reached (values kept), "
    "-1 singular covariance, -2 z column sum fell below threshold (equalPro), "
    "-3 mixing proportion fell below threshold; the last three give null values.",
    "grid.<model>.iterations: EM iterations of me() rerun from Mclust's hc start "
    "(the outer iterations for VEI, VEE, EVE, VVE, VEV, whose M-step iterates too); "
    "null for k = 1 (closed form, mvn()).",
    "grid.<model>.prior: the same with prior = priorControl() (defaultPrior: "
    "shrinkage 0.01, mean = data mean, dof = d + 2, scale = var(X) / k^(2/d) "
    "(the trace version for diagonal models)); loglik is the data log-likelihood "
    "mclust reports, without the prior term. mclust has no prior for EVE, VEE, VVE "
    "and EVV: mclustBIC drops them and Mclust(X, modelNames = one of them, "
    "prior = priorControl()) stops with 'undefined columns selected'; there "
    "prior.supported is false and all prior values are null.",
    "default: Mclust(X) with all defaults (14 models, G = 1:9, no prior); "
    "mean is (K, D), sigma (K, D, D), classification in 1..K; ari is "
    "mclust::adjustedRandIndex against the class column; time_s is the median "
    "of 3 system.time(Mclust(X)) elapsed seconds on the machine that wrote this file. "
    "loglik and classification come from mclust's last E-step, pro/mean/sigma from "
    "the M-step after it, so the log-likelihood of the stored parameters can be a "
    "little higher (faithful: +0.004, diabetes: +0.003; others agree to 1e-6).",
    "hc: hclass(hc(X, modelName = hcModelName, use = hcUse), 3), the partition "
    "that initialises EM for k = 3 (hc's default partition = dupPartition(X)); "
    "use = 'SVD' runs hc on Z = scale(X) %*% V %*% diag(1/sqrt(s)) where "
    "svd(scale(X)) = U diag(s) V'.",
    "floats are rounded to 10 significant digits.",
    "Every script starts with r_code.helpers; a data set's analysis is "
    "helpers + datasets.<name>.r_read + r_code.reference, its timing "
    "helpers + r_read + r_code.timing.",
]


def _round(x, digits: int = 10):
    """Round floats (also inside lists) to ``digits`` significant digits; leave None alone."""
    if isinstance(x, list):
        return [_round(v, digits) for v in x]
    return None if x is None else float(f"{x:.{digits}g}")


def _reshape(flat, shape):
    """Nest a flat row-major list into lists of the given shape."""
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [_reshape(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _dumps(obj, level: int = 0) -> str:
    """JSON with one dict key per line and every list on a single line (short, diffable)."""
    if not isinstance(obj, dict):
        return json.dumps(obj)
    pad = " " * (level + 1)
    items = [f"{pad}{json.dumps(k)}: {_dumps(v, level + 1)}" for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"


def export_datasets() -> dict:
    """Write the five CSV files in R; return versions, options and each file's columns."""
    calls = "\n".join(f"export(load_data({r_literal(name)}, {r_literal(package)}), "
                      f"{r_literal(cls)}, {r_literal(f'{DATA}/{name}.csv')})"
                      for name, (package, cls) in DATASETS.items())
    code = EXPORT_CODE_TEMPLATE.replace("@CALLS@", calls)
    return {"code": code, "out": run_r(code)}


def _grid(r: dict) -> dict:
    """Collect the per-(model, k) results of one data set's R run into lists over k."""
    grid = {}
    for model in MODELS:
        g = {"loglik": [], "bic": [], "df": [], "iterations": [], "return_code": [],
             "prior": {"loglik": [], "bic": [], "return_code": []}}
        for k in KS:
            for dest, prefix in ((g, "grid"), (g["prior"], "prior")):
                key = f"{prefix}.{model}.{k}"
                fit = r.get(key + ".fit", [None, None, None])
                dest["loglik"].append(_round(fit[0]))
                dest["bic"].append(_round(fit[1]))
                if prefix == "grid":
                    dest["df"].append(None if fit[2] is None else int(fit[2]))
                    its = r.get(key + ".its", [None])[0]
                    dest["iterations"].append(None if its is None else int(its))
                rc = r.get(key + ".rc", [None])[0]
                dest["return_code"].append(None if rc is None else int(rc))
        g["prior"]["supported"] = r[f"prior.{model}.supported"] == [1.0]
        grid[model] = g
    return grid


def analyse(name: str, columns: list[str]) -> dict:
    """Run the reference R code and the timing for one data set; return its JSON entry."""
    csv = f"{DATA}/{name}.csv"
    r_read = read_csv_code(csv, columns)
    r = run_r(r_read + REFERENCE_CODE)
    k, bic, loglik, df, icl = r["best.fit"]
    k, d = int(k), len(columns)
    default = {
        "model": r["best.model"][0], "k": k, "bic": _round(bic), "loglik": _round(loglik),
        "df": int(df), "icl": _round(icl),
        "ari": _round(r["best.ari"][0]) if "best.ari" in r else None,
        "icl_pick": {"model": r["icl.model"][0], "k": int(r["icl.fit"][0]),
                     "icl": _round(r["icl.fit"][1])},
        "pro": _round(r["best.pro"]),
        "mean": _reshape(_round(r["best.mean"]), (k, d)),
        "sigma": _reshape(_round(r["best.sigma"]), (k, d, d)),
        "classification": [int(c) for c in r["best.classification"]],
    }
    icl_pick = default["icl_pick"]
    if r["icl.summary"][0] != f"{icl_pick['model']},{icl_pick['k']}":
        raise RuntimeError(f"{name}: ICL pick disagrees with summary(mclustICL): {r['icl.summary']}")
    timed = run_mclust(csv, columns, repeats=REPEATS)
    full = {"model": default["model"], "k": k, "bic": bic, "loglik": loglik,
            "classification": default["classification"]}
    for key, value in full.items():
        if timed[key] != value:
            raise RuntimeError(f"{name}: timed Mclust(X) disagrees on {key}: {timed[key]} vs {value}")
    default["time_s"], default["times_s"] = timed["elapsed"], timed["elapsed_all"]
    if r["hc.same_as_Mclust"] != [1.0]:
        raise RuntimeError(f"{name}: hc() differs from the start Mclust used")
    return {
        "csv": csv, "columns": columns, "n": len(default["classification"]), "d": d,
        "r_package": DATASETS[name][0], "class_column": DATASETS[name][1],
        "r_read": r_read,
        "default": default,
        "hc": {"k": 3, "partition": [int(c) for c in r["hc.partition"]]},
        "grid": _grid(r),
    }


def main() -> None:
    """Export the data, run mclust, write tests/data/mclust_reference.json and print a summary."""
    require_rscript()
    os.chdir(ROOT)
    os.makedirs(DATA, exist_ok=True)
    exported = export_datasets()
    meta = exported["out"]
    out = {
        "about": "Reference results of R's mclust (Mclust, mclustICL, hc) on the CSV files "
                 "in this folder; written by benchmarks/mclust_reference.py.",
        "R": meta["R"][0], "mclust": meta["mclust"][0], "gclus": meta["gclus"][0],
        "blas": meta["blas"][0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
                   f"{os.getloadavg()[0]:.2f} at the start (for time_s)",
        "mclust_options": {"hcUse": meta["hcUse"][0], "hcModelName": meta["hcModelName"][0],
                           "subset": int(meta["subset"][0]), "emModelNames": meta["emModelNames"]},
        "models": list(MODELS), "ks": list(KS),
        "notes": NOTES,
        "r_code": {
            "helpers": R_HELPERS, "export": exported["code"],
            "reference": REFERENCE_CODE,
            "timing": timing_code(repeats=REPEATS),
        },
        "datasets": {},
    }
    for name in DATASETS:
        columns = meta[f"{DATA}/{name}.csv.columns"]
        print(f"{name} ({len(columns)} columns) ...", flush=True)
        out["datasets"][name] = entry = analyse(name, columns)
        dft = entry["default"]
        failed = [f"{m},{k}" for m, g in entry["grid"].items()
                  for k, ll in zip(KS, g["loglik"]) if ll is None]
        print(f"  Mclust(X): {dft['model']},{dft['k']} BIC {dft['bic']} logL {dft['loglik']} "
              f"ARI {dft['ari']} ICL {dft['icl_pick']['model']},{dft['icl_pick']['k']} "
              f"time {dft['time_s']} s; NA (no prior): {len(failed)} {' '.join(failed)}")
    path = f"{DATA}/mclust_reference.json"
    with open(path, "w") as f:
        f.write(_dumps(out) + "\n")
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KiB)")


if __name__ == "__main__":
    main()
