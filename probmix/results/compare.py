"""``probmix.compare``: the same model fitted by several engines, side by side.

Each engine is fitted on the same data; the components of every fit are then
put in one common order (that of the first fit), by the Hungarian matching of
their means (their component-indexed point estimates for other programs) in
units of the data's standard deviation, so that row k of the table and the
colour of component k in the figure are the same cluster for every engine.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from probmix.infer.registry import CLOSED_FORM, RENAMED, model_kind

__all__ = ["compare", "Comparison", "DEFAULT_METHODS"]

#: Engine -> default options for a GaussianMixture: the fast closed-form algorithms.
DEFAULT_METHODS = {"map": {"method": CLOSED_FORM["map"]}, "svi": {"method": CLOSED_FORM["svi"]},
                   "mcmc": {"method": CLOSED_FORM["mcmc"], "num_samples": 500,
                            "num_warmup": 500, "num_chains": 2}}
_NAMES = {"em": "MAP (EM)", "gradient": "MAP (gradient)", "online": "MAP (online EM)",
          "cavi": "SVI (CAVI)", "stochastic": "SVI", "gibbs": "MCMC (Gibbs)",
          "nuts": "MCMC (NUTS)"}


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`.

    Attributes
    ----------
    fits : dict of str to Fit
        Label -> fit, every fit's components in the first fit's order.
    table : pandas.DataFrame
        One row per scalar parameter (``weights[k]``, ``means[k,d]`` for a GaussianMixture;
        every component-indexed site of a program), columns ``(label, "mean")`` and
        ``(label, "sd")`` per fit: the point estimate for MAP (sd NaN), the posterior mean
        and standard deviation of the draws otherwise.
    seconds : dict of str to float
        Wall time of each fit.
    x : ndarray (N, D)
        The data.
    """

    fits: dict
    table: object
    seconds: dict
    x: np.ndarray = field(repr=False)

    def plot(self, **kwargs):
        """Side-by-side figure (:func:`probmix.plot.compare`); needs a GaussianMixture, D >= 2."""
        from probmix import plot

        return plot.compare(self.fits, self.x, **kwargs)

    def with_fits(self, fits: dict, x) -> "Comparison":
        """The same comparison with replaced fits (e.g. in other units) and data, table rebuilt."""
        axes = {label: _component_axes(f, x) for label, f in fits.items()}
        return Comparison(fits=dict(fits), table=_table(fits, axes), seconds=dict(self.seconds),
                          x=np.asarray(x, dtype=np.float64))

    def to_string(self, *, precision: int = 3) -> str:
        """The table as text, one ``mean ± sd`` cell per fit."""
        labels = list(self.fits)
        width = max(12, *(len(f"{n} ({self.seconds[n]:.1f} s)") for n in labels)) + 2
        rows = [f"{'parameter':<14}" + "".join(
            f"{f'{n} ({self.seconds[n]:.1f} s)':>{width}}" for n in labels)]
        for name, row in self.table.iterrows():
            cells = []
            for n in labels:
                mean, sd = row[(n, "mean")], row[(n, "sd")]
                text = f"{mean:.{precision}f}" + ("" if np.isnan(sd) else
                                                  f" ± {sd:.{precision}f}")
                cells.append(f"{text:>{width}}")
            rows.append(f"{name:<14}" + "".join(cells))
        return "\n".join(rows + self.notes())

    def notes(self) -> list[str]:
        """Warnings that go under the table: variational sds against MCMC's, when both ran.

        Variational posteriors (CAVI, SVI) are too narrow where parameters are correlated
        (overlapping components): measured on an overlapping pair, their 90% intervals were
        0.30-0.36 of the MCMC width, and CAVI's 90% intervals covered the truth in 52-77% of
        repeated data sets (Gibbs: 92-97%; issue 18). With an MCMC fit in the comparison, the
        ratio sd_VI / sd_MCMC per parameter says how much narrower on these data.
        """
        vi = [n for n, f in self.fits.items() if f.engine == "svi"]
        mcmc = [n for n, f in self.fits.items() if f.engine == "mcmc"]
        if not vi:
            return []
        out = ["", "VI sds can be too narrow (overlapping components: 90% intervals measured "
                   "at 0.3 of MCMC's width, covering the truth 52-77% of the time); trust MCMC "
                   "for intervals."]
        for label in vi:
            if mcmc:
                ratio = (self.table[(label, "sd")] / self.table[(mcmc[0], "sd")]).to_numpy()
                ratio = ratio[np.isfinite(ratio)]
                if len(ratio):
                    out.append(f"{label} sd / {mcmc[0]} sd: min {ratio.min():.2f}, median "
                               f"{np.median(ratio):.2f}, max {ratio.max():.2f}")
        return out


def _component_axes(fit, x) -> dict:
    """Component axis of each site of the fit (its parameters and draws)."""
    from probmix.io.data import as_data

    return fit.mixture.component_axes(as_data(x), list(dict.fromkeys([*fit.params, *fit.draws])))


def _signature(fit, axes: dict, sd: np.ndarray) -> np.ndarray:
    """Per-component signature (K, P): standardised means, or every component site."""
    site = fit.mixture.signature_site
    if site is not None and site in fit.params:
        return np.asarray(fit.params[site], dtype=float) / sd
    parts = [np.moveaxis(np.asarray(fit.params[n], dtype=float), axes[n], 0)
             for n in axes if n in fit.params]
    k = parts[0].shape[0]
    return np.concatenate([p.reshape(k, -1) for p in parts], axis=1)


def _permuted(fit, perm: np.ndarray, axes: dict):
    """The fit with its components reordered: new component j is old component perm[j]."""
    if np.array_equal(perm, np.arange(len(perm))):
        return fit
    params = {n: (np.take(v, perm, axis=axes[n]) if n in axes else v)
              for n, v in fit.params.items()}
    draws = {n: (np.take(v, perm, axis=axes[n]) if n in axes else v)
             for n, v in fit.draws.items()}
    z = fit.assignment_draws
    if z is not None:
        z = np.argsort(perm)[z]  # old label -> new label
    return dataclasses.replace(fit, params=params, draws=draws, assignment_draws=z)


def _table(fits: dict, axes: dict):
    import pandas as pd

    columns, index = {}, None
    for label, fit in fits.items():
        names = [n for n in axes[label] if n in fit.params and n not in ("precisions",
                                                                          "covariances")]
        rows, means, sds = [], [], []
        for name in names:
            value = np.asarray(fit.params[name], dtype=float)
            draws = fit.draws.get(name)
            sd = (np.asarray(draws, dtype=float).std(axis=(0, 1)) if draws is not None
                  else np.full(value.shape, np.nan))
            for idx in np.ndindex(value.shape):
                rows.append(f"{name}[{','.join(map(str, idx))}]")
                means.append(value[idx])
                sds.append(sd[idx])
        index = rows if index is None else index
        if rows != index:
            raise ValueError(f"fit {label!r} has other parameters than the first fit; compare "
                             "fits of one model.")
        columns[(label, "mean")] = means
        columns[(label, "sd")] = sds
    table = pd.DataFrame(columns, index=index)
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["fit", "statistic"])
    return table


def _specs(model, engines, per_engine: dict) -> dict:
    """Label -> fit options (``engine``, ``method`` and the method's options, checked against
    the engine registry before anything runs), from engine names or labelled option dicts."""
    from probmix.infer.registry import ENGINES

    if isinstance(engines, dict):
        specs = {str(k): dict(v) for k, v in engines.items()}
        for label, spec in specs.items():
            if spec.get("engine") not in ENGINES:
                raise ValueError(f"engines[{label!r}] must hold engine= one of {ENGINES}; got "
                                 f"{spec.get('engine')!r}.")
        return {label: _checked(model, spec) for label, spec in specs.items()}
    if isinstance(engines, str):
        engines = [engines]
    engines = list(engines)
    bad = [e for e in engines if e not in ENGINES]
    if bad or not engines:
        raise ValueError(f"engines must be a non-empty sequence of {ENGINES} (or a dict label -> "
                         f"options); got {engines!r}.")
    unknown = set(per_engine) - set(ENGINES)
    if unknown:
        raise TypeError(f"compare() got unexpected keyword(s) {sorted(unknown)}; per-engine "
                        "options go in map={...}, svi={...}, mcmc={...}.")
    gmm = model_kind(model) == "gmm"
    specs = {}
    for engine in engines:
        options = dict(DEFAULT_METHODS[engine]) if gmm else {}
        user = dict(per_engine.get(engine) or {})
        if ("method" in user or "kernel" in user) and gmm:
            options = {}  # a chosen algorithm starts from its own defaults
        for old, new in RENAMED.items():  # a default under a deprecated name is overridden
            if old in user:
                options.pop(new, None)
        options.update(user)
        spec = _checked(model, dict(engine=engine, **options))
        method = spec["method"]
        specs[_NAMES.get(method, f"{engine} ({method})")] = spec
    return specs


def _checked(model, spec: dict) -> dict:
    """``spec`` with its method named and its options in their current names (registry)."""
    from probmix.infer.registry import resolve

    options = dict(spec)
    engine = options.pop("engine")
    # stack: resolve, _checked, _specs, compare, the user
    entry, options = resolve(model, engine, options, stacklevel=4)
    return dict(engine=engine, method=entry.method, **options)


def compare(model, x, *, engines=("map", "svi", "mcmc"), seed: int = 0, progress: bool = False,
            **per_engine):
    """Fit one model with several engines and line up their estimates.

    Parameters
    ----------
    model : GaussianMixture or callable
        A :class:`probmix.GaussianMixture` or a Pyro mixture program.
    x : array-like (N, D)
    engines : sequence of {"map", "svi", "mcmc"}, or dict of str to dict
        Engines to run, in order; the first one's component order is the common one. For a
        GaussianMixture the defaults are the fast closed-form algorithms: EM for "map", CAVI
        for "svi" and a Gibbs sampler (2 chains of 500 draws after 500 warm-up) for "mcmc"
        (:data:`DEFAULT_METHODS`); other programs get :func:`probmix.fit`'s defaults
        (gradient MAP, stochastic SVI, NUTS). A dict ``{"label": {"engine": "mcmc",
        "method": "nuts", ...}, ...}`` names each fit and gives its full options.
    seed : int
        Seed of every fit.
    progress : bool
        Show the engines' progress bars.
    **per_engine : dict
        Options per engine name, e.g. ``svi={"method": "stochastic", "steps": 500}`` or
        ``mcmc={"method": "nuts"}`` (choosing a method drops the defaults above). Every
        option is checked against the engine registry (:mod:`probmix.infer.registry`) before
        the first fit runs.

    Returns
    -------
    Comparison
        ``.fits``, ``.table`` (pandas), ``.seconds``, ``.plot()``, ``.to_string()``.
    """
    from probmix.io.data import as_data
    from probmix.infer.dispatch import fit as run
    from scipy.optimize import linear_sum_assignment

    specs = _specs(model, engines, per_engine)
    data = as_data(x).cpu().numpy()
    sd = data.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    fits, seconds, axes = {}, {}, {}
    for label, options in specs.items():
        options = dict(options)
        engine = options.pop("engine")
        options.setdefault("progress", progress)
        start = time.perf_counter()
        result = run(model, data, engine=engine, seed=seed, **options)
        seconds[label] = time.perf_counter() - start
        axes[label] = _component_axes(result, data)
        if fits:
            first = next(iter(fits))
            ref = _signature(fits[first], axes[first], sd)
            sig = _signature(result, axes[label], sd)
            cost = ((ref[:, None, :] - sig[None, :, :]) ** 2).sum(-1)  # (K_ref, K)
            _, perm = linear_sum_assignment(cost)
            result = _permuted(result, perm, axes[label])
        fits[label] = result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        table = _table(fits, axes)
    return Comparison(fits=fits, table=table, seconds=seconds, x=data)
