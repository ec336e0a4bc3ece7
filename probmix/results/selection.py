"""Model selection: BIC, AIC, ICL, LOO and WAIC over covariance families and K (mclust's
search: 14 families × K = 1..9 by BIC). LOO and WAIC of single fits, and
:func:`compare_models`, live in :mod:`probmix.results.model_comparison`.

All criteria are reported so that *higher elpd is better*; BIC, AIC and ICL, as
usual, are lower-is-better (probmix's sign: BIC = -2 log L + p log N, the negative of mclust's
2 log L - p log N). ICL is mclust's (Biernacki, Celeux & Govaert 2000), the BIC plus twice the
entropy of the hard classification:

    ICL = BIC - 2 Σ_n log max_k p(z_n = k | x_n)   (>= BIC)
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from probmix.results.model_comparison import compare_models, waic  # noqa: F401 (re-exported)

__all__ = ["compare_models", "select", "waic", "Selection", "CRITERIA"]

CRITERIA = ("bic", "aic", "icl", "loo", "waic")
#: the criteria computed from MAP fits, lower is better
LIKELIHOOD_CRITERIA = ("bic", "aic", "icl")
#: the table column holding each criterion
COLUMNS = {"bic": "bic", "aic": "aic", "icl": "icl", "loo": "elpd_loo", "waic": "elpd_waic"}
#: screening (see :func:`select`): EM stops when the objective changes by less than this many
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


@dataclass(frozen=True)
class Selection:
    """Result of :func:`select`.

    Attributes
    ----------
    criterion : str
    table : pandas.DataFrame
        One row per (covariance, K) fitted, in the order (covariance, K): ``covariance``
        (mclust's name of the family), ``k``, then for bic/aic/icl ``loglik``,
        ``n_parameters``, ``bic`` (and ``aic`` or ``icl``), all lower-is-better; for loo/waic
        ``elpd_loo``/``elpd_waic`` (higher is better), its ``se`` (and ``max_pareto_k``),
        ``n_parameters``; last ``converged`` and ``refined`` (False: the fit kept its screening
        values, see :func:`select`'s ``screen``). A fit whose covariance degenerates (an error, or
        a component whose covariance is the ``reg_covar`` ridge alone in some direction:
        collapsed on a few points or on tied values) is a row of NaN, as mclust's NA. Indexed by ``n_components`` when ``covariance`` was one
        name, else by 0, 1, ...
    best : int
        The selected number of components.
    fits : dict
        K -> Fit when ``covariance`` was one name, (covariance, K) -> Fit otherwise (mclust
        names); failed fits are left out.
    best_covariance : str or None
        mclust's name of the selected covariance family.
    """

    criterion: str
    table: object
    best: int
    fits: dict = field(repr=False)
    best_covariance: str | None = None

    @property
    def column(self) -> str:
        """The table column of the criterion."""
        column = COLUMNS.get(self.criterion, self.criterion)
        return column if column in self.table.columns else self.table.columns[0]

    @property
    def lower_is_better(self) -> bool:
        return self.criterion in LIKELIHOOD_CRITERIA

    @property
    def best_fit(self):
        """The Fit of the selected (covariance, K)."""
        for key in ((self.best_covariance, self.best), self.best):
            if key in self.fits:
                return self.fits[key]
        raise KeyError(f"no fit stored for covariance={self.best_covariance!r}, K={self.best}.")

    def top(self, n: int = 3):
        """The ``n`` best rows of the table, best first (failed fits last), as mclust's summary."""
        return self.table.sort_values(self.column, ascending=self.lower_is_better,
                                      na_position="last", kind="stable").head(n)


def _candidate_ks(n_components) -> list[int]:
    """The candidate K, sorted; a ValueError naming n_components for anything else."""
    if isinstance(n_components, numbers.Integral) and not isinstance(n_components, bool):
        n_components = [n_components]
    if isinstance(n_components, (str, bytes)) or not hasattr(n_components, "__iter__"):
        raise ValueError("n_components must be an iterable of positive integers, e.g. "
                         f"range(1, 10) or [2, 3, 5]; got {n_components!r}.")
    values = list(n_components)
    bad = [v for v in values
           if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1]
    if bad or not values:
        raise ValueError("n_components must be positive integers, e.g. range(1, 10); got "
                         f"{values!r}" + (f" ({bad[0]!r} is not one)." if bad else "."))
    if len(set(values)) < len(values):
        raise ValueError(f"n_components lists a K twice; got {values!r}.")
    return sorted(int(v) for v in values)


def _families(covariance) -> list:
    """[(mclust name, family)] of ``covariance``: one name, a list of names, or "all"."""
    from probmix.model.covariance import MCLUST_MODELS, get_family, mclust_name

    if isinstance(covariance, str) and covariance == "all":
        covariance = MCLUST_MODELS
    names = [covariance] if isinstance(covariance, str) or not hasattr(covariance, "__iter__") \
        else list(covariance)
    if not names:
        raise ValueError("covariance must be a name, a list of names or 'all'; got an empty list.")
    found = [(mclust_name(get_family(c)), get_family(c)) for c in names]
    labels = [label for label, _ in found]
    if len(set(labels)) < len(labels):
        raise ValueError(f"covariance names a family twice (aliases count: full is VVV, diag "
                         f"VVI, spherical VII, tied EEE); got {names!r}.")
    return found


def _collapsed(fit) -> bool:
    """Whether a component's covariance is the ridge alone in some direction: its scatter was
    singular (a component on a few points or on tied values), so only ``reg_covar`` bounds
    the likelihood. mclust calls such a fit singular and reports NA; so does :func:`select`.
    EM measures it on its own ridge (``fit.options["ridge_held"]``).
    """
    return bool(fit.options.get("ridge_held", False))


def _captured(step, label: str, k: int):
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


def _fit_one(run, model, x, label: str, k: int, **options):
    """One fit of the search: None when its covariance degenerates (an error, or a component
    held up by the ridge alone); warnings and errors as :func:`_captured`."""
    fit = _captured(lambda: run(model, x, **options), label, k)
    return None if fit is None or _collapsed(fit) else fit


def _row(fit, model, x, label: str, k: int, criterion: str, loglik=None) -> dict:
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


def _shared_starts(x, ks, method: str, seed, options) -> dict:
    """EM's default starts ("auto": the hierarchical and k-means++ partitions) depend on the
    rows alone, not on the covariance family: computed once per K here, they are passed to
    every family's fit as ``init`` (the same starts each fit would compute; 14× fewer trees
    and k-means++ passes). {} when the fits choose their own starts."""
    if method != "em" or options.get("init", "auto") != "auto" or options.get("n_init") \
            or options.get("sample_weight") is not None or options.get("chunk_size") \
            or options.get("distributed"):
        return {}
    import torch

    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        return {}
    from probmix.infer.map.em_data import AUTO_RESTARTS, AUTO_RESTARTS_ROWS
    from probmix.infer.map.em_init import initial_partitions
    from probmix.infer.map.em_steps import PreparedData
    from probmix.model.covariance import get_family

    if x.shape[0] > AUTO_RESTARTS_ROWS or x.shape[1] > 50:  # where the default n_init depends
        # on the family (wide data: fewer restarts for the larger statistics)
        return {}
    dtype = options.get("dtype") or torch.float64
    device = options.get("device")
    data = PreparedData(x.to(dtype=dtype, device=device), get_family("spherical"))
    return {k: {"init": initial_partitions("auto", data, k, AUTO_RESTARTS, seed).cpu().numpy()}
            for k in ks}


def _compile_em_kernel(x, n_fits: int, k_max: int, options, progress) -> None:
    """Compile EM's small-data kernel (once per installation, about 15 s) before a grid of
    :data:`COMPILE_MIN_FITS` or more small maximum-likelihood fits, which it then runs 10-20×
    faster (:mod:`probmix.infer.map.em_compiled`); fits that it cannot serve run in torch."""
    from probmix.infer.map import em_compiled

    if n_fits < COMPILE_MIN_FITS or options.get("compiled", "auto") != "auto":
        return
    if str(options.get("device") or "cpu") != "cpu" or \
            str(options.get("dtype") or "float64").replace("torch.", "") != "float64":
        return
    from probmix.infer.map.em_data import AUTO_RESTARTS

    restarts = AUTO_RESTARTS + 2  # "auto": the k-means++ starts and the two trees' starts
    if not em_compiled.small(x.shape[0], x.shape[1], restarts, k_max) or em_compiled.ready():
        return
    if progress:
        print("probmix: compiling the EM kernel for small data (once per installation, "
              "about 15 s)", file=sys.stderr, flush=True)
    em_compiled.compile_kernel()


def _refine(rows, fits, grid, one, column, run, x, criterion, prior, options) -> None:
    """Continue screened fits within :data:`SCREEN_WINDOW` of the best to the full stopping
    rule (warm-started where the screening stopped), until none in the window is left;
    ``rows`` and ``fits`` are updated in place."""
    from probmix.model.gaussian_mixture import GaussianMixture

    while True:
        values = np.array([row[column] for row in rows], dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.any():
            return
        todo = [i for i in np.flatnonzero(finite & (values <= values[finite].min()
                                                     + SCREEN_WINDOW))
                if not rows[i]["refined"]]
        if not todo:
            return
        for i in todo:
            k, label, family = grid[i]
            key = k if one else (label, k)
            model = GaussianMixture(k, covariance=family, prior=prior)
            fit = _fit_one(run, model, x, label, k, warm_start=fits[key], **options)
            if fit is None:
                fits.pop(key)
            else:
                fits[key] = fit
            rows[i] = {**_row(fit, model, x, label, k, criterion), "refined": True}


def _grid_search(x, grid, one, starts, options, criterion, screen, progress):
    """The likelihood search with every fit in EM's compiled kernel
    (:class:`probmix.infer.map.em_grid.Grid`): shared preparation, lazy restarts while
    screening, fits in parallel threads. Returns (rows, fits) as the per-fit path; a
    refined row equals what fit_em gives for its (covariance, K)."""
    import torch

    from probmix._progress import progress_bar
    from probmix.infer.dispatch import fit as run_one
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
        if fit is not None and not _collapsed(fit):
            fits[key] = fit
        else:
            fit = None
        rows[i] = {**_row(fit, model, x, label, k, criterion, loglik), "refined": refined}

    started = []
    for i in progress_bar(range(len(cells)), desc=f"select ({criterion})", enabled=progress,
                          unit="fit"):
        model, label, k = cells[i]
        served = _captured(lambda: search.start(i), label, k)
        if served:
            started.append(i)
        elif served is None:  # the starts' covariances degenerate
            record(i, None, None, True)
        else:  # the kernel does not serve it: fit_em alone, to the full rule
            options_i = {**options, "init": starts[k]}
            record(i, _fit_one(run_one, model, x, label, k, engine="map", method="em",
                               **options_i), None, True)
    if screen:
        search.screen(started, SCREEN_STOP["tol"])
    else:
        search.refine(started)
    for i in started:
        model, label, k = cells[i]
        out = _captured(lambda: search.fit(i, screened=screen), label, k)
        record(i, *(out if out is not None else (None, None)), not screen)
    while screen:  # refine every fit within SCREEN_WINDOW of the best, until none is left
        values = np.array([row[column] for row in rows], dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.any():
            break
        todo = [i for i in np.flatnonzero(finite & (values <= values[finite].min()
                                                     + SCREEN_WINDOW)) if not rows[i]["refined"]]
        if not todo:
            break
        search.refine(todo)
        for i in todo:
            model, label, k = cells[i]
            out = _captured(lambda: search.fit(i, screened=False), label, k)
            record(i, *(out if out is not None else (None, None)), True)
    return rows, fits


def select(x, n_components=range(1, 10), *, covariance=None, criterion: str = "bic",
           prior=None, engine: str | None = None, seed: int = 0, progress: bool = False,
           screen: bool = True, **options) -> Selection:
    """Choose the covariance family and number of components of a GaussianMixture.

    With the defaults this is mclust's ``Mclust(X)``: its 14 covariance models × K = 1..9,
    maximum-likelihood EM, the best BIC (here lower is better: probmix's BIC is minus mclust's).

    Parameters
    ----------
    x : array-like (N, D)
    n_components : int or iterable of int
        Candidate K values.
    covariance : str, list of str, or "all"
        One family (``"full"``, ``"VVV"``, ...), a list of them, or ``"all"``: mclust's 14
        (:data:`probmix.model.covariance.MCLUST_MODELS`). Default ``"all"`` for bic/aic/icl,
        ``"full"`` for loo/waic (the posterior engines fit only VII, VVI, EEE and VVV).
    criterion : {"bic", "aic", "icl", "loo", "waic"}
        BIC/AIC/ICL from MAP fits (lower is better; ICL = BIC - 2 Σ_n log max_k p(z_n = k |
        x_n), mclust's), or PSIS-LOO / WAIC from posterior draws (higher elpd is better).
    prior
        Passed to :class:`probmix.GaussianMixture`. Default ``"flat"`` (maximum likelihood, as
        mclust and as BIC assumes) for bic/aic/icl, ``"default"`` for loo/waic.
    engine : str, optional
        Default "map" for bic/aic/icl and "mcmc" (``method="gibbs"``) for loo/waic.
    seed : int or None
    progress : bool
        One progress bar over the fits.
    screen : bool
        For bic/aic/icl with EM (the default engine): first fit every (covariance, K) with a
        looser stopping rule (:data:`SCREEN_STOP`: the objective changes by less than 1e-5
        nats per point, about mclust's own rule), then continue every fit whose criterion is
        within :data:`SCREEN_WINDOW` of the best, from where it stopped, to the stopping rule
        asked for (EM's default: within 1e-8 nats per point of the mode), until no fit left
        in the window is unrefined. Rows far from the best keep their screening values (lower
        bounds of their log-likelihood; the table's ``refined`` column says which). False
        runs every fit to the full rule (about 3× the EM iterations on mclust's data sets).
    **options
        Options of the engine's method (e.g. ``init``, ``max_iter``, ``num_samples``), checked
        against the engine registry (:mod:`probmix.infer.registry`) before the first fit.

    Returns
    -------
    Selection
        Fits whose covariance degenerates (:class:`~probmix.exceptions.DegenerateCovarianceError`,
        or a component's covariance no larger than the ``reg_covar`` ridge in some direction:
        a likelihood spike on a few points, which would otherwise win every BIC) are NaN
        rows; warnings raised inside a fit are re-emitted with its (covariance, K) in front.
    """
    import pandas as pd

    from probmix._progress import progress_bar
    from probmix.infer.dispatch import fit as run
    from probmix.infer.registry import resolve
    from probmix.io.data import as_data
    from probmix.model.gaussian_mixture import GaussianMixture

    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}.")
    ks = _candidate_ks(n_components)
    likelihood = criterion in LIKELIHOOD_CRITERIA
    covariance = ("all" if likelihood else "full") if covariance is None else covariance
    one = covariance != "all" if isinstance(covariance, str) else \
        not hasattr(covariance, "__iter__")  # one family: the table and fits by K, as before
    families = _families(covariance)
    prior = ("flat" if likelihood else "default") if prior is None else prior
    x = as_data(x, min_samples=max(ks))
    if engine is None:
        engine = "map" if likelihood else "mcmc"
        if engine == "mcmc" and "kernel" not in options:
            options.setdefault("method", "gibbs")
    entry, options = resolve(GaussianMixture(ks[0], covariance=families[0][1], prior=prior),
                             engine, options, stacklevel=2)
    options["method"] = entry.method
    if entry.accepts("progress"):
        options["progress"] = False  # one bar over the fits, not one per fit
    screen = bool(screen) and likelihood and entry.method == "em"
    grid = [(k, label, family) for k in ks for label, family in families]  # small K first
    if entry.method == "em" and prior == "flat":
        _compile_em_kernel(x, len(grid), max(ks), options, progress)
    stage = {**options, **SCREEN_STOP} if screen else options
    fits, rows, column = {}, [], COLUMNS[criterion]
    starts = _shared_starts(x, ks, entry.method, seed, stage)
    from probmix.infer.map import em_grid

    em_options = {**{k: v for k, v in options.items() if k != "method"}, "seed": seed}
    if likelihood and starts and prior == "flat" and em_grid.applies(
            x, ks, max(len(v["init"]) for v in starts.values()), em_options):
        rows, fits = _grid_search(x, grid, one, {k: v["init"] for k, v in starts.items()},
                                  em_options, criterion, screen, progress)
        screen = False  # screened and refined already
        grid = []
    for k, label, family in progress_bar(grid, desc=f"select ({criterion})", enabled=progress,
                                         unit="fit"):
        model = GaussianMixture(k, covariance=family, prior=prior)
        fit = _fit_one(run, model, x, label, k, engine=engine, seed=seed,
                       **{**stage, **starts.get(k, {})})
        if fit is not None:
            fits[k if one else (label, k)] = fit
        rows.append({**_row(fit, model, x, label, k, criterion), "refined": not screen})
    if screen:
        _refine(rows, fits, grid, one, column, run, x, criterion, prior,
                dict(engine=engine, seed=seed, **options))
    order = {label: i for i, (label, _) in enumerate(families)}
    table = pd.DataFrame(rows).sort_values(["covariance", "k"], key=lambda c: c.map(order)
                                           if c.name == "covariance" else c, kind="stable")
    table = table.set_index(pd.Index(table["k"], name="n_components")) if one \
        else table.reset_index(drop=True)
    if table[column].isna().all():
        raise ValueError(f"every fit failed with a degenerate covariance ({len(rows)} fits); "
                         "raise reg_covar or use fewer components.")
    best = table.loc[table[column].idxmin() if likelihood else table[column].idxmax()]
    return Selection(criterion=criterion, table=table, best=int(best["k"]), fits=fits,
                     best_covariance=str(best["covariance"]))
