"""Reference NUTS samplers on probmix's Gaussian mixture, run in a separate environment.

``benchmarks/bench_mcmc.py --reference-python PATH`` calls this script with that Python
(a venv holding NumPyro/JAX, PyMC and nutpie: never probmix's own environment)::

    PATH/bin/python benchmarks/_reference_samplers.py IN.npz OUT.npz SAMPLER

SAMPLER is ``numpyro``, ``pymc`` or ``nutpie``. IN.npz holds the data ``x`` (N, D), ``k``, the
prior resolved by probmix (``alpha`` (K,), ``m0`` (D,), ``beta``, ``nu``, ``psi`` (D, D)) and
``num_samples``, ``warmup``, ``chains``. The model is probmix's: weights ~ Dirichlet(α),
Λ_k ~ Wishart(ν, scale Ψ⁻¹), μ_k | Λ_k ~ N(m₀, (β Λ_k)⁻¹), x_n ~ Σ_k w_k N(μ_k, Λ_k⁻¹) with
z summed out. NumPyro samples Λ_k with its Wishart; PyMC and nutpie through the Bartlett
decomposition Λ_k = (L A_k)(L A_k)ᵀ (L Lᵀ = Ψ⁻¹, A_k lower triangular with A_ii² ~ χ²(ν - i),
A_ij ~ N(0, 1)), which is the same prior on Λ_k; they run their chains on every core, as
probmix's batched NUTS does (NumPyro runs them in sequence). OUT.npz gets ``means`` (C, S, K, D)
(unrelabelled), ``seconds`` (sampling, warm-up included), ``compile_seconds`` and
``divergences``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np


def _cores(chains: int) -> int:
    """Chains run in parallel on every core, as probmix's batched NUTS does."""
    return max(1, min(chains, os.cpu_count() or 1))


def _numpyro(x, k, alpha, m0, beta, nu, psi, num_samples, warmup, chains):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd
    from numpyro.infer import MCMC, NUTS

    jax.config.update("jax_enable_x64", True)

    def model(data):
        w = numpyro.sample("weights", nd.Dirichlet(jnp.asarray(alpha)))
        with numpyro.plate("components", k):
            prec = numpyro.sample("precisions", nd.Wishart(
                concentration=float(nu), scale_matrix=jnp.linalg.inv(jnp.asarray(psi))))
            mu = numpyro.sample("means", nd.MultivariateNormal(
                jnp.asarray(m0), precision_matrix=float(beta) * prec))
        comp = nd.MultivariateNormal(mu, precision_matrix=prec)  # batch (K,)
        logp = comp.log_prob(data[:, None, :]) + jnp.log(w)  # (N, K)
        numpyro.factor("obs", jax.scipy.special.logsumexp(logp, -1).sum())

    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=num_samples, num_chains=chains,
                chain_method="sequential", progress_bar=False)
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(0), jnp.asarray(x), extra_fields=("diverging",))
    seconds = time.perf_counter() - t0
    means = np.asarray(mcmc.get_samples(group_by_chain=True)["means"])
    div = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    return means, seconds, 0.0, div  # JAX compiles inside run: counted in seconds


def _pymc_model(x, k, alpha, m0, beta, nu, psi):
    import pymc as pm
    import pytensor.tensor as pt

    n, d = x.shape
    low = np.linalg.cholesky(np.linalg.inv(psi))  # Ψ⁻¹ = L Lᵀ
    rows, cols = np.tril_indices(d, -1)
    with pm.Model() as model:
        w = pm.Dirichlet("weights", a=np.asarray(alpha, dtype=np.float64))
        c = pm.ChiSquared("c", nu=(nu - np.arange(d)) * np.ones((k, d)), shape=(k, d))
        a = pt.zeros((k, d, d))
        a = pt.set_subtensor(a[:, np.arange(d), np.arange(d)], pt.sqrt(c))
        if len(rows):
            off = pm.Normal("off", 0.0, 1.0, shape=(k, len(rows)))
            a = pt.set_subtensor(a[:, rows, cols], off)
        chol = pt.matmul(low[None], a)  # (K, D, D): the precision's lower Cholesky factor
        eps = pm.Normal("eps", 0.0, 1.0, shape=(k, d))
        # μ_k = m₀ + (β^½ Cholᵀ)⁻¹ ε: solve the upper-triangular system by back substitution
        cols_mu = []
        for j in reversed(range(d)):
            s = eps[:, j]
            for m, done in zip(range(j + 1, d), cols_mu):  # cols_mu = [y_(j+1), ...]
                s = s - np.sqrt(beta) * chol[:, m, j] * done
            cols_mu.insert(0, s / (np.sqrt(beta) * chol[:, j, j]))
        means = pm.Deterministic("means", pt.stack(cols_mu, axis=-1) + m0[None])
        u = pt.matmul(x[None] - means[:, None, :], chol)  # (K, N, D): (x - μ)ᵀ Chol
        log_det = pt.log(pt.diagonal(chol, axis1=1, axis2=2)).sum(-1)  # (K,)
        logp = (pt.log(w)[:, None] + log_det[:, None] - 0.5 * d * np.log(2 * np.pi)
                - 0.5 * (u ** 2).sum(-1))  # (K, N)
        pm.Potential("obs", pm.math.logsumexp(logp, axis=0).sum())
    return model


def _pymc(x, k, alpha, m0, beta, nu, psi, num_samples, warmup, chains):
    import pymc as pm

    model = _pymc_model(x, k, alpha, m0, beta, nu, psi)
    t0 = time.perf_counter()
    with model:
        idata = pm.sample(draws=num_samples, tune=warmup, chains=chains, cores=_cores(chains),
                          random_seed=0, progressbar=False, compute_convergence_checks=False)
    seconds = time.perf_counter() - t0
    means = idata.posterior["means"].values
    div = int(idata.sample_stats["diverging"].values.sum())
    return means, seconds, 0.0, div


def _nutpie(x, k, alpha, m0, beta, nu, psi, num_samples, warmup, chains):
    import nutpie

    model = _pymc_model(x, k, alpha, m0, beta, nu, psi)
    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    trace = nutpie.sample(compiled, draws=num_samples, tune=warmup, chains=chains, seed=0,
                          progress_bar=False, cores=_cores(chains))
    seconds = time.perf_counter() - t0
    means = trace.posterior["means"].values
    div = int(trace.sample_stats["diverging"].values.sum())
    return means, seconds, compile_seconds, div


def main() -> int:
    source, target, sampler = sys.argv[1:4]
    data = np.load(source)
    args = (data["x"], int(data["k"]), data["alpha"], data["m0"], float(data["beta"]),
            float(data["nu"]), data["psi"], int(data["num_samples"]), int(data["warmup"]),
            int(data["chains"]))
    run = {"numpyro": _numpyro, "pymc": _pymc, "nutpie": _nutpie}[sampler]
    means, seconds, compile_seconds, div = run(*args)
    np.savez(target, means=np.asarray(means, dtype=np.float64), seconds=seconds,
             compile_seconds=compile_seconds, divergences=div)
    return 0


if __name__ == "__main__":
    sys.exit(main())
