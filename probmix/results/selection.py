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

import numbers
from dataclasses import dataclass, field

from probmix.results.model_comparison import compare_models, waic  # noqa: F401 (re-exported)
from probmix.results.selection_fits import (  # noqa: F401 (SCREEN_WINDOW... re-exported)
    COLUMNS, COMPILE_MIN_FITS, LIKELIHOOD_CRITERIA, SCREEN_STOP, SCREEN_WINDOW, compile_em_kernel,
    as_asked, asked_init, fit_one, grid_search, refine, shared_starts, table_row)

__all__ = ["compare_models", "select", "waic", "Selection", "CRITERIA"]

CRITERIA = ("bic", "aic", "icl", "loo", "waic")


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
        For bic/aic/icl with EM (the default engine): first screen every (covariance, K) (on
        small data every restart runs :data:`~probmix.infer.map.em_grid.SCREEN_STEPS` EM
        iterations, then only the leader goes on; elsewhere every restart runs), to a looser
        stopping rule (:data:`SCREEN_STOP`: the objective changes by less than 1e-5 nats per
        point, about mclust's own rule), then refine every fit whose criterion is within
        :data:`SCREEN_WINDOW` of the best, from where it stopped, to the stopping rule asked
        for (EM's default: within 1e-8 nats per point of the mode), until no fit left in the
        window is unrefined. Rows far from the best keep their screening values (lower bounds
        of their log-likelihood; the table's ``refined`` column says which). False runs every
        fit to the full rule (4-7× the EM iterations on mclust's data sets).

        On small in-memory data with maximum likelihood the whole search runs in EM's compiled
        kernel (:mod:`probmix.infer.map.em_grid`), ``torch.get_num_threads()`` fits at once;
        there a refined fit resumes all its restarts, so its row is exactly the fit that
        ``probmix.fit`` gives for that (covariance, K).
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
    from probmix.infer.map import em_grid
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
        compile_em_kernel(x, len(grid), options, progress)
    stage = {**options, **SCREEN_STOP} if screen else options
    fits, rows, column = {}, [], COLUMNS[criterion]
    starts = shared_starts(x, ks, entry.method, seed, stage)
    asked = asked_init(x, stage) if starts else None  # what the fits record as their init
    em_options = {**{k: v for k, v in options.items() if k != "method"}, "seed": seed}
    if likelihood and starts and prior == "flat" and em_grid.applies(x, em_options):
        rows, fits = grid_search(x, grid, one, {k: v["init"] for k, v in starts.items()},
                                 em_options, criterion, screen, progress, asked)
    else:  # one fit at a time
        for k, label, family in progress_bar(grid, desc=f"select ({criterion})",
                                             enabled=progress, unit="fit"):
            model = GaussianMixture(k, covariance=family, prior=prior)
            fit = fit_one(run, model, x, label, k, engine=engine, seed=seed,
                          **{**stage, **starts.get(k, {})})
            as_asked(fit, asked)
            if fit is not None:
                fits[k if one else (label, k)] = fit
            rows.append({**table_row(fit, model, x, label, k, criterion),
                         "refined": not screen})
        if screen:
            refine(rows, fits, grid, one, column, run, x, criterion, prior,
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
