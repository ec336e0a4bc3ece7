"""NumPyro's posterior of two gallery programs, the reference of the slow test that checks probmix.

Usage (from the repository root; the reference Python is a separate venv with NumPyro and
JAX, never probmix's own environment: ``python3 -m venv /tmp/refvenv &&
/tmp/refvenv/bin/pip install numpyro "jax[cpu]"``)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/numpyro_gallery_reference.py \\
        --reference-python /tmp/refvenv/bin/python [--out tests/data/numpyro_gallery.json]

The driver (probmix's Python) simulates the data of each model with its ``simulate(N,
seed=SEED)`` and hands it to a worker (this file again, run by the reference Python with
``--worker IN OUT``), which writes the same program in NumPyro (same sites, same
data-scaled priors, z summed out by a log-sum-exp), runs NUTS and summarises the draws.
The JSON holds, per model, the data ``x``, the settings and, for every global parameter
(weights (K,), locs (K, D), scales (K, D), corr (K, D (D - 1) / 2): the lower
off-diagonal correlations of L Lᵀ), the posterior ``mean``, ``sd``, ``mcse`` (of the mean)
and ``r_hat``. ``tests/test_gallery_numpyro.py`` (slow) runs probmix's NUTS on the same
data and program and compares.

Components are identified the same way on both sides, by :func:`global_parameters`: per
draw, sorted by the first coordinate of their means. ordered_2d's prior already orders
them; lkj_gaussian's components are 4 apart along it (spreads 0.5-1), so the sort is a
relabelling that never splits a component.

Only numpy is imported at module level: the test loads :func:`global_parameters` and
:func:`mean_mcse` from here, so both samplers are summarised by the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
#: the compared models: program options, data size and seed, NUTS settings of the reference
MODELS = {
    "lkj_gaussian": {"n_components": 3, "eta": 2.0, "n": 150, "seed": 0},
    "ordered_2d": {"n_components": 3, "eta": 2.0, "n": 150, "seed": 0},
}
NUTS = {"num_chains": 4, "num_warmup": 1000, "num_samples": 2000, "seed": 0}


def global_parameters(draws: dict, name: str) -> dict:
    """The compared parameters of a model's draws, components sorted by their first mean.

    Parameters
    ----------
    draws : dict of ndarray
        Site draws with leading (chain, draw) axes: ``weights`` (C, S, K), ``scales``
        (C, S, K, D), ``corr_chol`` (C, S, K, D, D) and ``locs`` (C, S, K, D)
        (lkj_gaussian) or ``locs_first`` (C, S, K) and ``locs_rest`` (C, S, K, D - 1)
        (ordered_2d).
    name : str
        The model.

    Returns
    -------
    dict of ndarray
        ``weights`` (C, S, K), ``locs`` (C, S, K, D), ``scales`` (C, S, K, D), ``corr``
        (C, S, K, D (D - 1) / 2).
    """
    draws = {k: np.asarray(v, dtype=np.float64) for k, v in draws.items()}
    if name == "ordered_2d":
        locs = np.concatenate([draws["locs_first"][..., None], draws["locs_rest"]], -1)
    else:
        locs = draws["locs"]
    low = draws["corr_chol"]
    d = low.shape[-1]
    rows, cols = np.tril_indices(d, -1)
    corr = (low @ np.swapaxes(low, -1, -2))[..., rows, cols]  # (C, S, K, D (D - 1) / 2)
    order = np.argsort(locs[..., 0], axis=-1)  # (C, S, K)
    out = {"weights": draws["weights"], "locs": locs, "scales": draws["scales"], "corr": corr}
    return {k: np.take_along_axis(v, order.reshape(order.shape + (1,) * (v.ndim - 3)), axis=2)
            for k, v in out.items()}


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each chain, by FFT. x: (C, S) -> (C, S)."""
    s = x.shape[1]
    centred = x - x.mean(1, keepdims=True)
    size = 2 ** int(np.ceil(np.log2(2 * s)))
    f = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :s] / s


def _ess(x: np.ndarray) -> float:
    """Stan's multi-chain ESS of one scalar, x: (C, S) (ArviZ's ``_ess``, step for step).

    Geyer's initial positive sequence on the combined autocorrelation, made monotone, with
    the next even lag added when positive (Vehtari et al. 2021, eq. 10-11).
    """
    c, s = x.shape
    if np.ptp(x) < np.finfo(float).resolution:
        return float(x.size)
    acov = _autocovariance(x)
    mean_var = acov[:, 0].mean() * s / (s - 1.0)
    var_plus = mean_var * (s - 1.0) / s + (x.mean(1).var(ddof=1) if c > 1 else 0.0)
    rho = np.zeros(s)
    rho[0], even = 1.0, 1.0
    odd = rho[1] = 1.0 - (mean_var - acov[:, 1].mean()) / var_plus
    t = 1
    while t < s - 3 and even + odd > 0.0:
        even = 1.0 - (mean_var - acov[:, t + 1].mean()) / var_plus
        odd = 1.0 - (mean_var - acov[:, t + 2].mean()) / var_plus
        if even + odd >= 0:
            rho[t + 1], rho[t + 2] = even, odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho[max_t + 1] = even
    t = 1
    while t <= max_t - 2:  # initial monotone sequence
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2.0
        t += 2
    tau = -1.0 + 2.0 * rho[: max_t + 1].sum() + rho[max_t + 1: max_t + 2].sum()
    return c * s / max(tau, 1 / np.log10(c * s))


def mean_mcse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mean, sd, Monte Carlo standard error of the mean and split r_hat.

    Both on split chains (each chain's first and last halves as two chains). The ESS is
    Stan's multi-chain estimator without the rank normalisation that the MCSE of a mean does
    not use (ArviZ's ``ess(method="mean")``, :func:`_ess`); mcse = sd / sqrt(ESS).

    Parameters
    ----------
    x : ndarray (C, S, ...)

    Returns
    -------
    mean, sd, mcse, r_hat : ndarray (...)
    """
    x = np.asarray(x, dtype=np.float64)
    mean, sd = x.mean((0, 1)), x.std((0, 1), ddof=1)
    half = x.shape[1] // 2
    x = np.concatenate([x[:, :half], x[:, -half:]], 0)  # split chains (2C, S/2, ...)
    s = x.shape[1]
    w = x.var(1, ddof=1).mean(0)  # within-chain variance
    var_plus = w * (s - 1) / s + x.mean(1).var(0, ddof=1)
    r_hat = np.sqrt(var_plus / np.where(w > 0, w, 1.0))
    flat = x.reshape(*x.shape[:2], -1)
    ess = np.array([_ess(flat[..., j]) for j in range(flat.shape[-1])]).reshape(x.shape[2:])
    return mean, sd, sd / np.sqrt(ess), r_hat


def summarise(params: dict) -> dict:
    """``{group: {"mean", "sd", "mcse", "r_hat": nested lists}}`` of :func:`global_parameters`."""
    out = {}
    for group, v in params.items():
        mean, sd, mcse, r_hat = mean_mcse(v)
        out[group] = {"mean": mean.tolist(), "sd": sd.tolist(), "mcse": mcse.tolist(),
                      "r_hat": r_hat.tolist()}
    return out


# ---------------------------------------------------------------- worker (reference Python)

def _numpyro_model(name: str, k: int, eta: float):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd
    from jax.scipy.special import logsumexp
    from numpyro.distributions.transforms import OrderedTransform

    def model(x):
        n, d = x.shape
        m, s = x.mean(0), jnp.maximum(x.std(0), 1e-12)
        weights = numpyro.sample("weights", nd.Dirichlet(jnp.ones(k)))
        if name == "ordered_2d":
            base_loc = jnp.concatenate([(m[0] - s[0])[None], jnp.log(s[0]) * jnp.ones(k - 1)])
            base_scale = jnp.concatenate([(2 * s[0])[None], jnp.ones(k - 1)])
            first = numpyro.sample("locs_first", nd.TransformedDistribution(
                nd.Normal(base_loc, base_scale).to_event(1), [OrderedTransform()]))
        with numpyro.plate("components", k):
            if name == "ordered_2d":
                rest = numpyro.sample("locs_rest", nd.Normal(m[1:], 2 * s[1:]).to_event(1))
                locs = jnp.concatenate([first[:, None], rest], -1)
            else:
                locs = numpyro.sample("locs", nd.Normal(m, 2 * s).to_event(1))
            scales = numpyro.sample("scales", nd.HalfNormal(2 * s).to_event(1))
            corr_chol = numpyro.sample("corr_chol", nd.LKJCholesky(d, eta))
        comp = nd.MultivariateNormal(locs, scale_tril=scales[:, :, None] * corr_chol)  # (K,)
        logp = comp.log_prob(x[:, None, :]) + jnp.log(weights)  # (N, K)
        numpyro.factor("obs", logsumexp(logp, -1).sum())

    return model


def worker(source: str, target: str) -> None:
    """Run NumPyro's NUTS on the task in ``source`` (JSON) and write the summary to ``target``."""
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS as NumPyroNUTS, init_to_value

    jax.config.update("jax_enable_x64", True)
    with open(source) as f:
        task = json.load(f)
    x = jax.numpy.asarray(np.asarray(task["x"], dtype=np.float64))
    model = _numpyro_model(task["model"], task["n_components"], task["eta"])
    start = {k: jax.numpy.asarray(np.asarray(v, dtype=np.float64))
             for k, v in task["start"].items()}
    kernel = NumPyroNUTS(model, init_strategy=init_to_value(values=start))
    mcmc = MCMC(kernel, num_warmup=task["num_warmup"],
                num_samples=task["num_samples"], num_chains=task["num_chains"],
                chain_method="sequential", progress_bar=False)
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(task["seed"]), x, extra_fields=("diverging",))
    seconds = time.perf_counter() - t0
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    out = {"summary": summarise(global_parameters(draws, task["model"])),
           "divergences": int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum()),
           "seconds": seconds, "numpyro": numpyro.__version__, "jax": jax.__version__}
    with open(target, "w") as f:
        json.dump(out, f)


# ---------------------------------------------------------------- driver (probmix's Python)

def _load_model(name: str):
    import importlib.util

    path = os.path.join(os.path.dirname(HERE), "models", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"gallery_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generating_start(name: str, truth: dict) -> dict:
    """The site values of the parameters ``simulate`` drew the data with (the chains' start).

    From NumPyro's default start (uniform in [-2, 2] on the unconstrained scale) some
    ordered_2d chains settled in a minor mode with two means in one cluster (r_hat 9.5);
    starting every chain where the data came from keeps them in the main mode, as probmix's
    NUTS is kept by its MAP start.
    """
    corr = np.asarray(truth["corr"], dtype=np.float64)  # (K,), 2-D
    low = np.zeros((corr.size, 2, 2))
    low[:, 0, 0], low[:, 1, 0], low[:, 1, 1] = 1.0, corr, np.sqrt(1 - corr ** 2)
    locs = np.asarray(truth["locs"], dtype=np.float64)
    start = {"weights": truth["weights"], "scales": truth["scales"], "corr_chol": low}
    if name == "ordered_2d":
        start.update(locs_first=locs[:, 0], locs_rest=locs[:, 1:])
    else:
        start["locs"] = locs
    return {k: np.asarray(v, dtype=np.float64).tolist() for k, v in start.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", help="a Python with numpyro and jax")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "tests", "data",
                                                      "numpyro_gallery.json"))
    parser.add_argument("--worker", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    if not args.reference_python:
        parser.error("--reference-python is required (a venv with numpyro and jax)")
    result = {"notes": (
        "Written by benchmarks/numpyro_gallery_reference.py (see its docstring): NumPyro NUTS "
        f"({NUTS['num_chains']} chains x ({NUTS['num_warmup']} warm-up + "
        f"{NUTS['num_samples']} draws), chain_method='sequential', PRNGKey({NUTS['seed']}), "
        "float64, every chain started at the generating parameters) on the same program as "
        "models/<name>.py (same sites and data-scaled priors, z summed out), on x = "
        "simulate(n, seed=seed) of that file. Components sorted per draw by the first "
        "coordinate of their means. mcse: sd / sqrt(ESS), Stan's multi-chain ESS on split "
        "chains without rank normalisation (mean_mcse in the script)."),
        "command": "PYTHONPATH=$PWD .venv/bin/python benchmarks/numpyro_gallery_reference.py "
                   "--reference-python /tmp/refvenv/bin/python",
        "nuts": NUTS, "models": {}}
    for name, spec in MODELS.items():
        x, _, truth = _load_model(name).simulate(spec["n"], seed=spec["seed"])
        task = {"model": name, "x": x.tolist(), "n_components": spec["n_components"],
                "eta": spec["eta"], "start": generating_start(name, truth), **NUTS}
        with tempfile.TemporaryDirectory() as tmp:
            source, target = os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")
            with open(source, "w") as f:
                json.dump(task, f)
            run = subprocess.run([args.reference_python, os.path.abspath(__file__),
                                  "--worker", source, target], capture_output=True, text=True)
            if run.returncode != 0:
                print(run.stderr, file=sys.stderr)
                return run.returncode
            with open(target) as f:
                out = json.load(f)
        worst = max(max(np.ravel(s["r_hat"])) for s in out["summary"].values())
        print(f"{name}: {out['seconds']:.0f} s, max r_hat {worst:.4f}, divergences "
              f"{out['divergences']}", flush=True)
        result["versions"] = {"numpyro": out.pop("numpyro"), "jax": out.pop("jax")}
        result["models"][name] = {**spec, "x": x.tolist(), **out}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
