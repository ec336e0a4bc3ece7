"""NUTS on a full-covariance GaussianMixture's potential, compiled (numba) on the CPU.

The batched torch sampler (:mod:`probmix.infer.mcmc.nuts_batched`) pays the per-operation
overhead of torch: profiled on Old Faithful (272 × 2, K = 2, two chains batched), a leapfrog
step cost about 0.6 ms, two thirds of it the hundred-odd small tensor operations of the
closed-form potential and gradient, the rest the tree building around it; the arithmetic
itself is a few thousand flops. Here the potential and gradient
(:func:`~probmix.infer.mcmc._nuts_kernels.value_grad`, one pass over the data) and the whole
NUTS transition (the same multinomial NUTS with the same U-turn checks) are compiled, and
Python runs only the warm-up adaptation between transitions (the same dual averaging and
windowed mass-matrix estimates, :mod:`probmix.infer.mcmc.nuts_adapt`).

It serves where :func:`fused_spec` says so: the potential carries its closed form (a
GaussianMixture with full covariances, Dirichlet weights and a proper prior), the data are
float64 on the CPU, numba imports, and ``PROBMIX_FUSED`` is not ``0``. The first use
compiles the kernels (about 10-20 s, once: numba caches them on disk).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from probmix.infer.mcmc.nuts_adapt import DualAveraging, Welford, mass_windows
from probmix.infer.mcmc.nuts_batched import per_chain

__all__ = ["fused_spec", "run_fused_chains", "prepare"]

_kernels = None


def _load():
    """The compiled kernel module, or None when numba cannot be imported."""
    global _kernels
    if _kernels is None:
        try:
            from probmix.infer.mcmc import _nuts_kernels
        except Exception:  # numba missing or broken (or no cache location): torch serves
            _kernels = False
        else:
            _kernels = _nuts_kernels
    return _kernels or None


def fused_spec(fn) -> dict | None:
    """The closed-form pieces of a potential ``fn`` when the compiled sampler serves it.

    Returns ``fn.closed_form`` as numpy arguments of the kernels (``x`` (N, D), ``alpha``
    (K,), ``nu``, ``psi`` (D, D), ``beta``, ``m0`` (D,), ``const``, ``k``), or None: no
    closed form, not float64 on the CPU, numba missing, or ``PROBMIX_FUSED=0``.
    """
    form = getattr(fn, "closed_form", None)
    if form is None or os.environ.get("PROBMIX_FUSED", "") == "0":
        return None
    x = form["x"]
    if x.device.type != "cpu" or x.dtype != torch.float64 or _load() is None:
        return None

    def arr(t):
        return np.ascontiguousarray(torch.as_tensor(t).detach().cpu().numpy(), dtype=np.float64)

    return {"x": arr(x), "alpha": arr(form["alpha"]), "nu": float(form["nu"]),
            "psi": arr(form["psi"]), "beta": float(form["beta"]), "m0": arr(form["m0"]),
            "const": float(form["const"]), "k": int(form["alpha"].shape[0])}


def _args(spec: dict) -> tuple:
    return (spec["x"], spec["alpha"], spec["nu"], spec["psi"], spec["beta"], spec["m0"],
            spec["const"], spec["k"])


def value_and_grad(spec: dict, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """U (C,) and ∂U/∂z (C, P) of parameter vectors z (C, P) (for tests and starts)."""
    kernels = _load()
    z = np.ascontiguousarray(z, dtype=np.float64)
    grad = np.empty_like(z)
    value = np.array([kernels.value_grad(z[c], *_args(spec), grad[c]) for c in range(len(z))])
    return value, grad


def prepare(spec: dict):
    """Compile the kernels (or load them from numba's cache) before forking workers."""
    k, d = spec["k"], spec["x"].shape[1]
    p = k * d + k * d * (d + 1) // 2 + k - 1
    run_fused(spec, np.zeros((1, p)), num_samples=1, num_warmup=0, seed=0, max_tree_depth=1,
              dense_mass=True)
    run_fused(spec, np.zeros((1, p)), num_samples=1, num_warmup=0, seed=0, max_tree_depth=1,
              dense_mass=False)


class _Metric:
    """Per-chain inverse mass and the factor of the mass that draws momenta, as numpy."""

    def __init__(self, inverse_mass: torch.Tensor, dense: bool):
        c, p = inverse_mass.shape[:2]
        empty = np.zeros((c, 1, 1)) if not dense else np.zeros((c, 1))
        if dense:  # r ~ N(0, M), M = inv⁻¹: r = L ε with L Lᵀ = M
            chol = torch.linalg.cholesky(torch.cholesky_inverse(
                torch.linalg.cholesky(inverse_mass)))
            self.inv, self.chol = inverse_mass.numpy().copy(), chol.numpy().copy()
            self.inv_diag = self.scale = empty
        else:
            self.inv_diag, self.scale = inverse_mass.numpy().copy(), \
                inverse_mass.rsqrt().numpy().copy()
            self.inv = self.chol = empty
        self.dense = dense

    def args(self) -> tuple:
        return self.dense, self.inv, self.inv_diag, self.chol, self.scale


def run_fused(spec: dict, init: np.ndarray, *, num_samples: int, num_warmup: int, seed: int,
              target_accept_prob: float = 0.8, max_tree_depth: int = 10,
              inverse_mass: torch.Tensor | None = None, dense_mass: bool = False,
              progress=None) -> dict:
    """Run C NUTS chains from ``init`` (C, P), as :func:`~probmix.infer.mcmc.nuts_batched.
    run_batched` does (same adaptation, same statistics), with the compiled kernels.

    Returns ``samples`` (C, S, P) tensor and ``stats`` of (C, S) arrays.
    """
    kernels = _load()
    c, p = init.shape
    args = _args(spec)
    rng = np.random.default_rng(int(seed))
    if inverse_mass is None:
        inverse_mass = torch.ones(p, dtype=torch.float64)
    inverse_mass = torch.as_tensor(inverse_mass, dtype=torch.float64)
    if dense_mass and inverse_mass.ndim == 1:
        inverse_mass = torch.diag(inverse_mass)
    if not dense_mass and inverse_mass.ndim == 2:
        inverse_mass = inverse_mass.diagonal()
    metric = _Metric(inverse_mass.expand(c, *inverse_mass.shape).clone(), dense_mass)
    z = np.array(init, dtype=np.float64, order="C")
    pe, g = value_and_grad(spec, z)
    eps = kernels.step_sizes(z, g, pe, np.ones(c), *metric.args(), rng, *args)
    adapt = DualAveraging(torch.from_numpy(eps), target_accept_prob)
    windows = set(mass_windows(num_warmup))
    welford = Welford(c, p, dense=dense_mass, dtype=torch.float64, device="cpu")
    samples = np.empty((c, num_samples, p))
    stats = np.empty((c, num_samples, 7))  # the keys below, in order
    st = np.zeros((c, 5))
    last, total = 0, num_warmup + num_samples
    for it in range(total):
        kernels.transitions(z, g, pe, eps, *metric.args(), max_tree_depth, rng, *args, st)
        if it < num_warmup:
            eps = adapt.update(torch.from_numpy(st[:, 0].copy())).numpy()
            welford.add(torch.from_numpy(z.copy()))
            if it in windows:
                metric = _Metric(welford.inverse_mass(), dense_mass)
                welford = Welford(c, p, dense=dense_mass, dtype=torch.float64, device="cpu")
                eps = kernels.step_sizes(z, g, pe, eps, *metric.args(), rng, *args)
                adapt.restart(torch.from_numpy(eps.copy()))
            if it == num_warmup - 1:
                eps = adapt.final().numpy()
            eps = np.ascontiguousarray(eps, dtype=np.float64)
        else:
            s = it - num_warmup
            samples[:, s] = z
            stats[:, s, :3] = st[:, [3, 1, 2]]
            stats[:, s, 3] = eps
            stats[:, s, 4] = st[:, 0]
            stats[:, s, 5] = st[:, 4]
            stats[:, s, 6] = -pe
        if progress is not None and (it + 1 - last >= 10 or it + 1 == total):
            progress(c * (it + 1 - last))
            last = it + 1
    out = {"diverging": stats[..., 0] > 0.5, "n_steps": stats[..., 1].astype(np.int64),
           "tree_depth": stats[..., 2].astype(np.int64), "step_size": stats[..., 3],
           "acceptance_rate": stats[..., 4], "energy": stats[..., 5], "lp": stats[..., 6]}
    return {"samples": torch.from_numpy(samples), "stats": out}


def run_fused_chains(spec: dict, inits: list[dict], *, constrain, seed: int, progress=None,
                     **kwargs) -> list[dict]:
    """:func:`run_fused` on a GaussianMixture, per-chain results as
    :func:`~probmix.infer.mcmc.nuts_batched.run_batched_chains` returns them.

    ``inits``: one dict of unconstrained ``weights``, ``precisions``, ``means`` per chain;
    ``constrain`` maps unconstrained values (any leading dims) to site values.
    """
    names = ("means", "precisions", "weights")  # the kernels' layout (and the mass matrix's)
    shapes = [inits[0][n].shape for n in names]
    init = torch.stack([torch.cat([i[n].reshape(-1) for n in names]) for i in inits])
    out = run_fused(spec, init.detach().cpu().numpy().astype(np.float64), seed=seed,
                    progress=progress, **kwargs)
    return per_chain(out, names, shapes, constrain)
