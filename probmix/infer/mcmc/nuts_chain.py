"""One NUTS chain: Pyro's kernel driven step by step, with the statistics ArviZ reads.

Pyro's ``MCMC`` runner keeps no per-draw statistics; :func:`run_chain` calls the kernel's
``sample`` itself and records, per draw, divergence, gradient evaluations, tree depth, step
size, acceptance rate, energy and log density. :func:`laplace_inverse_mass` starts the mass
matrix from the curvature at the MAP solution.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from pyro.infer.mcmc import NUTS
from pyro.poutine.messenger import Messenger

from probmix._random import quiet_singular_samples, seeded

__all__ = ["run_chain", "laplace_inverse_mass"]


def _counted(fn, counter: list):
    def wrapped(params):
        counter[0] += 1
        return fn(params)
    return wrapped


class _TreeDepth(Messenger):
    """The depth of the tree Pyro's NUTS built in one ``kernel.sample`` call.

    Pyro keeps no record of it, but names the random choices of its doubling loop
    ``direction_t={t}_treedepth={d}`` (before building the subtree of depth d) and
    ``rand_t={t}_treedepth={d}`` (after a doubling succeeded, the depth now d): the depth of the
    last such choice is the number of doublings the trajectory kept (Stan's ``treedepth__``).
    """

    _NAME = re.compile(r"_treedepth=(\d+)$")

    def __init__(self):
        super().__init__()
        self.depth = 0

    def _postprocess_message(self, msg):
        found = self._NAME.search(msg.get("name") or "")
        if found:
            self.depth = int(found.group(1))


def laplace_inverse_mass(potential, at: dict, *, dense: bool = False) -> torch.Tensor:
    """Posterior variances of the unconstrained parameters from the curvature at ``at``.

    The diagonal of the inverse Hessian of the potential (1 / diagonal of the Hessian
    where the Hessian is not positive definite), flattened in sorted site order as Pyro's
    diagonal mass matrix expects. Starting NUTS with it skips the early warm-up phase in
    which tiny step sizes build long trees.
    """
    names = sorted(at)
    shapes = [at[n].shape for n in names]
    sizes = [at[n].numel() for n in names]
    flat = torch.cat([at[n].detach().reshape(-1) for n in names])

    def grad(v):
        v = v.detach().requires_grad_()
        parts = torch.split(v, sizes)
        value = potential.fn({n: p.reshape(s) for n, p, s in zip(names, parts, shapes)})
        return torch.autograd.grad(value, v)[0]

    # central differences of the gradient: works for potentials with a hand-written gradient
    # (no double backward); the step is small against the unit-scale standardised parameters
    h = 1e-5
    eye = torch.eye(flat.numel(), dtype=flat.dtype, device=flat.device)
    hess = torch.stack([(grad(flat + h * e) - grad(flat - h * e)) / (2 * h) for e in eye])
    hess = 0.5 * (hess + hess.T)
    chol, info = torch.linalg.cholesky_ex(hess)
    if int(info) == 0:
        cov = torch.cholesky_inverse(chol)
        if dense:
            return cov.detach()
        var = cov.diagonal()
    else:
        var = 1.0 / hess.diagonal().clamp_min(1e-8)
    var = var.clamp(1e-10, 1e4).detach()
    return torch.diag(var) if dense else var


def run_chain(potential, init: dict, *, num_samples: int, num_warmup: int, seed: int,
              target_accept_prob: float = 0.8, max_tree_depth: int = 10,
              inverse_mass: torch.Tensor | None = None, dense_mass: bool = False,
              progress=None) -> dict:
    """Run one NUTS chain with Pyro's kernel driven step by step.

    Parameters
    ----------
    potential : Potential
    init : dict of str to Tensor
        Unconstrained starting point.
    num_samples, num_warmup : int
    seed : int
    inverse_mass : Tensor (P,), optional
        Initial diagonal inverse mass matrix (sorted site order), e.g.
        :func:`laplace_inverse_mass`; adaptation goes on from it.
    progress : callable, optional
        Called with the number of iterations done since the last call.

    Returns
    -------
    dict
        ``samples``: constrained draws per site (S, ...) as numpy; ``stats``: per-draw
        ``diverging``, ``n_steps`` (potential-gradient evaluations), ``tree_depth`` (doublings
        of the trajectory, read from the sampler, at most ``max_tree_depth``), ``step_size``,
        ``acceptance_rate``, ``energy`` (the Hamiltonian at the start of the draw's
        trajectory: potential at the previous draw plus the fresh momentum's kinetic energy,
        Stan's ``energy__`` up to integration error; what ArviZ's E-BFMI reads) and ``lp``
        (the log density of the draw, minus its potential, standardised units) (S,).
    """
    calls = [0]
    kernel = NUTS(potential_fn=_counted(potential.fn, calls),
                  target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                  adapt_mass_matrix=True, full_mass=dense_mass)
    kept = {name: [] for name in potential.sites}
    stats = {"diverging": [], "n_steps": [], "tree_depth": [], "step_size": [],
             "acceptance_rate": [], "energy": [], "lp": []}
    kinetic = []  # the kinetic energies Pyro computes in one kernel.sample call; the first is
    # that of the fresh momentum, which with the current potential makes the start's energy
    kinetic_fn = kernel._kinetic_energy
    kernel._kinetic_energy = lambda r: kinetic.append(kinetic_fn(r)) or kinetic[-1]
    with seeded(seed), quiet_singular_samples():
        kernel.initial_params = init
        kernel.setup(num_warmup)
        if inverse_mass is not None:
            kernel.mass_matrix_adapter.inverse_mass_matrix = {tuple(sorted(init)): inverse_mass}
            kernel._adapter.reset_step_size_adaptation(kernel._initial_params)
        params = dict(init)
        last_report, total = 0, num_warmup + num_samples
        for it in range(total):
            n_div, mean_before, calls[0] = len(kernel._divergences), kernel._mean_accept_prob, 0
            kinetic.clear()
            with _TreeDepth() as tree:
                potential_before = kernel._potential_energy_last
                params = kernel.sample(params)
                if potential_before is None:  # the first call fills Pyro's cache
                    potential_before = kernel._potential_energy_last
            if it >= num_warmup:
                n = it - num_warmup + 1  # the kernel's running mean restarts after warm-up
                for name in potential.sites:
                    kept[name].append(params[name].detach().clone())
                stats["diverging"].append(len(kernel._divergences) > n_div)
                stats["n_steps"].append(calls[0])
                stats["tree_depth"].append(tree.depth)
                stats["energy"].append(float(potential_before + kinetic[0]))
                stats["lp"].append(-float(kernel._potential_energy_last))
                stats["step_size"].append(float(kernel.step_size))
                stats["acceptance_rate"].append(
                    mean_before + n * (kernel._mean_accept_prob - mean_before) if n > 1
                    else kernel._mean_accept_prob)
            if progress is not None and (it + 1 - last_report >= 10 or it + 1 == total):
                progress(it + 1 - last_report)
                last_report = it + 1
        kernel.cleanup()
    unconstrained = {name: torch.stack(v) for name, v in kept.items()}
    with torch.no_grad():
        samples = {name: v.cpu().numpy() for name, v in potential.constrain(unconstrained).items()}
    return {"samples": samples, "stats": {k: np.asarray(v) for k, v in stats.items()}}
