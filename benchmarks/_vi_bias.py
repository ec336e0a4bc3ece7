"""Bias of the variational engines in units of the posterior sd, against NUTS (bench_vi.py).

For each data set: a NUTS reference (4 chains x (1000 + 1000), probmix's default batched
sampler), then CAVI and SVI with the default guide (the Laplace approximation for a
GaussianMixture), ``guide="normal"`` (the default before) and ``guide="mvn"``, each from its
default start and ``seed=0``. For the weights and means, per coordinate,

* ``max |bias| / sd``: max_i |E_vi[θ_i] - E_nuts[θ_i]| / sd_nuts[θ_i];
* ``sd ratio``: sd_vi[θ_i] / sd_nuts[θ_i], smallest and largest;
* ``90% coverage``: the fraction of NUTS draws inside the engine's central 90% interval,
  averaged over coordinates (0.90 when the engine's marginals are right).

Each engine keeps 4000 draws by default. Both sides carry Monte Carlo error: the engine's
mean about sd / sqrt(4000) = 0.016 sd, NUTS's about sd / sqrt(ESS) (ESS a few thousand:
0.02 sd), so a maximum over 6-9 coordinates of about 0.05 is what two exact posteriors
would show. ``bench_vi.py --precise`` takes 4 × 10,000 NUTS draws and 40,000 engine draws
(noise about 0.005 + 0.005 sd), which separates a bias of a few hundredths from noise.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import probmix

ENGINES = {"CAVI": dict(engine="svi", method="cavi"),
           "SVI default (laplace)": dict(engine="svi"),
           "SVI guide=normal": dict(engine="svi", guide="normal"),
           "SVI guide=mvn": dict(engine="svi", guide="mvn")}


def _flat(fit):
    """(draws (M, P), names) of the weights and means."""
    parts = [fit.draws["weights"].reshape(-1, fit.n_components),
             fit.draws["means"].reshape(-1, fit.means.size)]
    return np.concatenate(parts, 1)


def compare(x, k, reference=None, *, nuts_samples=1000, n_draws=4000):
    """Rows [engine, seconds, max |bias|/sd, sd ratio range, 90% coverage] against NUTS
    (4 chains × (1000 warm-up + ``nuts_samples``)), each engine keeping ``n_draws`` draws."""
    model = probmix.GaussianMixture(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if reference is None:
            reference = probmix.fit(model, x, engine="mcmc", seed=0, progress=False,
                                    num_samples=nuts_samples)
        ref = _flat(reference)
        mean, sd = ref.mean(0), ref.std(0)
        rows = []
        for name, opts in ENGINES.items():
            t0 = time.perf_counter()
            extra = dict(num_draws=n_draws) if "method" in opts else dict(num_draws=n_draws,
                                                                          progress=False)
            fit = probmix.fit(model, x, seed=0, **extra, **opts)
            seconds = time.perf_counter() - t0
            draws = _flat(fit)
            bias = np.abs(draws.mean(0) - mean) / sd
            ratio = draws.std(0) / sd
            lo, hi = np.percentile(draws, [5, 95], axis=0)
            cover = ((ref >= lo) & (ref <= hi)).mean()
            rows.append([name, f"{seconds:.3g}", f"{bias.max():.3f}",
                         f"{ratio.min():.2f}-{ratio.max():.2f}", f"{cover:.2f}"])
    return rows
