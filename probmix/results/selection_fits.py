"""How :func:`probmix.results.selection.select` fits its grid of (covariance, K): one fit at a
time through ``probmix.fit``, or, for maximum-likelihood EM on small data, the whole grid in
EM's compiled kernel (:func:`grid_search`, :mod:`probmix.infer.map.em_grid`); the shared
starts, the screening and refinement, and the table row of each fit.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from probmix.results.model_comparison import waic

#: the criteria computed from MAP fits, lower is better
LIKELIHOOD_CRITERIA = ("bic", "aic", "icl")
#: the table column holding each criterion
COLUMNS = {"bic": "bic", "aic": "aic", "icl": "icl", "loo": "elpd_loo", "waic": "elpd_waic"}
#: screening (see :func:`probmix.results.selection.select`): EM stops when the objective changes by less than this many
#: nats per point (mclust's rule, a relative change of 1e-5 of the log-likelihood, is about 4e-5
#: nats per point on faithful) ...
SCREEN_STOP = {"stop": "change", "tol": 1e-5}
#: ... and every fit whose criterion is within this of the best is continued to the full rule.
#: On the five mclust data sets screening left no BIC within 30 of the best more than 10 above
#: its fully converged value (25 at most far from the best, where a loose stop chose a
#: different restart).
SCREEN_WINDOW = 30.0
#: a grid of at least this many small maximum-likelihood fits compiles EM's kernel first
COMPILE_MIN_FITS = 20



def collapsed(fit) -> bool:
    """Whether a component's covariance is the ridge alone in some direction: its scatter was
    singular (a component on a few points or on tied values), so only ``reg_covar`` bounds
    the likelihood. mclust calls such a fit singular and reports NA; so does :func:`select`.
    EM measures it on its own ridge (``fit.options["ridge_held"]``).
    """
    return bool(fit.options.get("ridge_held", False))


def captured(step, label: str, k: int):
    """``step()`` for the fit (covariance, K) of the search: None when its covariance
    degenerates (DegenerateCovarianceError); its warnings re-emitted naming (covariance, K);
    any other error gets a note saying which fit raised it."""
    from probmix.exceptions import DegenerateCovarianceError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = step()
        except DegenerateCovarianceError:
            out = None
        except Exception as error:
            error.add_note(f"(raised while probmix.select fitted covariance={label!r}, K={k})")
            raise
    for w in caught:
        warnings.warn(f"select, covariance={label!r}, K={k}: {w.message}", w.category,
                      stacklevel=4)
    return out


def fit_one(run, model, x, label: str, k: int, **options):
    """One fit of the search: None when its covariance degenerates (an error, or a component
    held up by the ridge alone); warnings and errors as :func:`captured`."""
    fit = captured(lambda: run(model, x, **options), label, k)
    return None if fit is None or collapsed(fit) else fit


def table_row(fit, model, x, label: str, k: int, criterion: str, loglik=None) -> dict:
    """The table row of one fit (NaN where it failed); ``loglik``: the fit's log-likelihood
    of x when the caller has it (else it is scored here)."""
    row = {"covariance": label, "k": k}
    nan = math.nan
    if criterion in LIKELIHOOD_CRITERIA:
        n = x.shape[0]
        loglik = nan if fit is None else fit.score(x) * n if loglik is None else loglik
        p = model.n_parameters(x.shape[1])
        # fit.bic(x) and fit.aic(x) from the one log-likelihood (each would score x again)
        row.update(loglik=loglik, n_parameters=p, bic=-2.0 * loglik + p * math.log(n))
        if criterion == "aic":
            row["aic"] = -2.0 * loglik + 2.0 * p
        elif criterion == "icl":  # BIC plus twice the entropy of the hard classification
            top = nan if fit is None else float(np.log(fit.predict_proba(x).max(1)).sum())
            row["icl"] = row["bic"] - 2.0 * top
    elif criterion == "waic":
        w = {"elpd_waic": nan, "se": nan} if fit is None else waic(fit)
        row.update(elpd_waic=w["elpd_waic"], se=w["se"])
    else:
        row.update(elpd_loo=nan, se=nan, max_pareto_k=nan)
        if fit is not None:
            import arviz_stats

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*Pareto.*")
                loo = arviz_stats.loo(fit.to_arviz())
            row.update(elpd_loo=float(loo.elpd), se=float(loo.se),
                       max_pareto_k=float(np.max(loo.pareto_k)))
    if criterion not in LIKELIHOOD_CRITERIA:
        row["n_parameters"] = model.n_parameters(x.shape[1])
    row["converged"] = False if fit is None else bool(fit.converged)
    return row


def shared_starts(x, ks, method: str, seed, options) -> dict:
    """EM's partition starts (:data:`~probmix.infer.map.em_init.PARTITION_INITS`: "auto", the
    hierarchical and k-means++ partitions; "hc"; "mclust"; "kmeans"; "k-means++") depend on
    the rows alone, not on the covariance family: computed
    once per K here, they are passed to every family's fit as ``init`` (the same starts each
    fit would compute; 14× fewer trees and k-means passes; beyond AUTO_RESTARTS_ROWS rows
    "auto" is one k-means++ start besides the trees, as EM's default there).

    Returns {K: {"init": int array (R, N)}}, or {} when the fits choose their own starts
    (random starts, weighted, streamed or sharded rows, wide data with "auto"'s
    family-dependent default n_init). :func:`asked_init` says what each fit records.
    """
    from probmix.infer.map.em_init import PARTITION_INITS

    init = options.get("init", "auto")
    if method != "em" or not isinstance(init, str) or init not in PARTITION_INITS \
            or options.get("sample_weight") is not None or options.get("chunk_size") \
            or options.get("distributed") or options.get("warm_start") is not None:
        return {}
    import torch

    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        return {}
    from probmix.infer.map.em_data import AUTO_RESTARTS_ROWS
    from probmix.infer.map.em_grid import serves
    from probmix.infer.map.em_init import initial_partitions
    from probmix.infer.map.em_steps import PreparedData
    from probmix.model.covariance import get_family

    if init == "auto" and not options.get("n_init") and x.shape[1] > 50:
        return {}  # wide data: "auto"'s default n_init depends on the family's statistics
    if x.shape[0] > AUTO_RESTARTS_ROWS and not serves(*x.shape):  # (R, N) labels per K:
        return {}  # kept for the grid's sizes only
    n_init = asked_init(x, options)[1]
    dtype = options.get("dtype") or torch.float64
    device = options.get("device")
    data = PreparedData(x.to(dtype=dtype, device=device), get_family("spherical"))
    return {k: {"init": initial_partitions(init, data, k, n_init, seed).cpu().numpy()}
            for k in ks}


def asked_init(x, options) -> tuple:
    """(init, n_init) that ``probmix.fit`` records for these options on x (N, D) (its
    default n_init: AUTO_RESTARTS k-means++ starts for "auto" on up to AUTO_RESTARTS_ROWS
    rows, else 1), which the fits started from :func:`shared_starts` record too (they were
    given the partitions as ``init``)."""
    from probmix.infer.map.em_data import AUTO_RESTARTS, AUTO_RESTARTS_ROWS

    init = options.get("init", "auto")
    n_init = options.get("n_init") or (
        AUTO_RESTARTS if init == "auto" and x.shape[0] <= AUTO_RESTARTS_ROWS else 1)
    return init, int(n_init)


def as_asked(fit, asked) -> None:
    """Record on a fit started from shared partitions the init and n_init asked for
    (``asked``: :func:`asked_init`'s pair, or None), as ``probmix.fit`` records them."""
    if fit is not None and asked is not None and fit.options.get("init") == "partition":
        fit.options["init"], fit.options["n_init"] = asked


def compile_em_kernel(x, n_fits: int, options, progress) -> None:
    """Compile EM's kernel (once per installation, about 20 s) before a grid of
    :data:`COMPILE_MIN_FITS` or more maximum-likelihood fits on data that
    :mod:`probmix.infer.map.em_grid` serves (:func:`~probmix.infer.map.em_grid.serves`),
    which it then runs (mclust's five data sets: 10-20× faster than per-fit EM in torch;
    1.0-4.4× at 3,000-20,000 rows)."""
    from probmix.infer.map import em_compiled

    from probmix.infer.map.em_grid import cpu_float64, serves

    if n_fits < COMPILE_MIN_FITS or options.get("compiled", "auto") != "auto" or \
            not cpu_float64(options) or not serves(x.shape[0], x.shape[1]) or \
            em_compiled.ready():
        return
    if progress:
        print("probmix: compiling the EM kernel (once per installation, about 20 s)",
              file=sys.stderr, flush=True)
    em_compiled.compile_kernel()


def to_refine(rows, column) -> list:
    """The rows not yet refined whose criterion (lower is better) is within
    :data:`SCREEN_WINDOW` of the best finite one ([] when none, or no row is finite)."""
    values = np.array([row[column] for row in rows], dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return []
    near = finite & (values <= values[finite].min() + SCREEN_WINDOW)
    return [int(i) for i in np.flatnonzero(near) if not rows[i]["refined"]]


def refine(rows, fits, grid, one, column, run, x, criterion, prior, options) -> None:
    """Continue screened fits within :data:`SCREEN_WINDOW` of the best to the full stopping
    rule (warm-started where the screening stopped), until none in the window is left;
    ``rows`` and ``fits`` are updated in place."""
    from probmix.model.gaussian_mixture import GaussianMixture

    while todo := to_refine(rows, column):
        for i in todo:
            k, label, family = grid[i]
            key = k if one else (label, k)
            model = GaussianMixture(k, covariance=family, prior=prior)
            fit = fit_one(run, model, x, label, k, warm_start=fits[key], **options)
            if fit is None:
                fits.pop(key)
            else:
                fits[key] = fit
            rows[i] = {**table_row(fit, model, x, label, k, criterion), "refined": True}


def grid_search(x, grid, one, starts, options, criterion, screen, progress, asked=None):
    """The likelihood search with every fit in EM's compiled kernel
    (:class:`probmix.infer.map.em_grid.Grid`): shared preparation, lazy restarts while
    screening, fits in parallel threads. Returns (rows, fits) as the per-fit path; a
    refined row equals what fit_em gives for its (covariance, K). ``asked``: the (init,
    n_init) the fits record (:func:`as_asked`)."""
    import torch

    from probmix._progress import progress_bar
    from probmix.infer.map.em_grid import Grid
    from probmix.model.gaussian_mixture import GaussianMixture

    cells = [(GaussianMixture(k, covariance=family, prior="flat"), label, k)
             for k, label, family in grid]
    search = Grid(x, cells, starts, options, threads=torch.get_num_threads())
    rows, fits, column = [None] * len(cells), {}, COLUMNS[criterion]

    def record(i, fit, loglik, refined):
        model, label, k = cells[i]
        key = k if one else (label, k)
        fits.pop(key, None)
        if fit is not None and not collapsed(fit):
            as_asked(fit, asked)
            fits[key] = fit
        else:
            fit = None
        rows[i] = {**table_row(fit, model, x, label, k, criterion, loglik), "refined": refined}

    bar = progress_bar(total=len(cells), desc=f"select ({criterion})", enabled=progress,
                       unit="fit")
    with search:
        started = []
        for i in range(len(cells)):
            _, label, k = cells[i]
            if captured(lambda: search.start(i), label, k):
                started.append(i)
            else:  # the starts' covariances degenerate
                record(i, None, None, True)
                bar.update(1)
        # every fit at once on the worker threads, after the starts: starting fits on the
        # main thread meanwhile was slower (the workers wait for the GIL between kernel calls)
        if screen:
            search.screen(started, SCREEN_STOP["tol"], done=lambda i: bar.update(1))
        else:
            search.refine(started, done=lambda i: bar.update(1))
        for i in started:
            _, label, k = cells[i]
            out = captured(lambda: search.fit(i, screened=screen), label, k)
            if out is None:
                record(i, None, None, not screen)
            else:  # screened rows: the kernel's log-likelihood (the same to rounding, 10x
                record(i, out[0], out[1] if screen else None, not screen)  # faster)
        while screen and (todo := to_refine(rows, column)):  # until none is left
            bar.total = (bar.total or 0) + len(todo)  # the refinements, as they come
            getattr(bar, "refresh", lambda: None)()  # a log's LineReporter has none
            search.refine(todo, done=lambda i: bar.update(1))
            for i in todo:  # scored by the Fit itself: the row's BIC is exactly fit.bic(x)
                _, label, k = cells[i]
                out = captured(lambda: search.fit(i, screened=False), label, k)
                record(i, None if out is None else out[0], None, True)
    bar.close()
    return rows, fits
