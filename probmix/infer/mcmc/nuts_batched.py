"""NUTS with every chain advanced together: one batched potential evaluation per leapfrog step.

Pyro's NUTS kernel runs one chain per process and spends about half of each leapfrog step
in Python bookkeeping around the potential (autograd, tree recursion, messengers): profiled
on 3000 × 2 points, K = 3, 2.3 ms per step, of which the closed-form potential is 1.2 ms.
Here the C chains are rows of one (C, P) tensor; each leapfrog step evaluates the potential
and its gradient for all of them at once (:func:`probmix.infer.mcmc.potential_full`'s
batched closed form), so the per-operation overhead is paid once for C chains.

The algorithm is the multinomial NUTS of Betancourt (2017) as NumPyro's iterative form
writes it: the trajectory doubles in a random direction; a new subtree of 2^j leapfrog steps
is built leaf by leaf, sampling its proposal in proportion to exp(-H) and checking the
U-turn criterion of every sub-subtree that ends at the current leaf through checkpoints of
momenta and momentum sums (all chains are at the same leaf index, so the checkpoint indices
are shared); a subtree that turns or diverges (ΔH > 1000) is rejected and ends the
trajectory, a valid one replaces the proposal with probability min(1, W_new / W_old), and
the doubling stops when the whole trajectory makes a U-turn or reaches ``max_tree_depth``.
Chains that have stopped are carried along unchanged (masked) until the last one stops.
Warm-up adapts a step size and a diagonal or dense mass matrix per chain
(:mod:`probmix.infer.mcmc.nuts_adapt`). On float64 CPU data a GaussianMixture runs the same
algorithm compiled instead (:mod:`probmix.infer.mcmc.nuts_fused`); this module serves the
other devices and dtypes.
"""

from __future__ import annotations

import math

import torch

from probmix.infer.mcmc.nuts_adapt import DualAveraging, Welford, mass_windows

__all__ = ["run_batched", "run_batched_chains"]

_MAX_DELTA_ENERGY = 1000.0


class _Metric:
    """The inverse mass matrix of each chain, diagonal (C, P) or dense (C, P, P)."""

    def __init__(self, inverse_mass: torch.Tensor):
        self.inv = inverse_mass
        self.dense = inverse_mass.ndim == 3
        if self.dense:  # r ~ N(0, M), M = inv⁻¹: r = L ε with L Lᵀ = M
            self.chol = torch.linalg.cholesky(torch.cholesky_inverse(
                torch.linalg.cholesky(inverse_mass)))
        else:
            self.scale = inverse_mass.rsqrt()

    def velocity(self, r):
        return (self.inv @ r[..., None])[..., 0] if self.dense else self.inv * r

    def momentum(self, eps):
        return (self.chol @ eps[..., None])[..., 0] if self.dense else self.scale * eps

    def kinetic(self, r):
        return 0.5 * (r * self.velocity(r)).sum(-1)

    def turning(self, r_left, r_right, r_sum):
        rs = r_sum - 0.5 * (r_left + r_right)
        return ((self.velocity(r_left) * rs).sum(-1) <= 0) | \
            ((self.velocity(r_right) * rs).sum(-1) <= 0)


def _leapfrog(vg, metric, z, r, g, eps):
    """One step of size eps (C, 1) (signed by direction): new z, r, grad, potential."""
    r = r - 0.5 * eps * g
    z = z + eps * metric.velocity(r)
    pe, g = vg(z)
    return z, r - 0.5 * eps * g, g, pe


def _where(mask, a, b):
    """a where mask (C,) else b, for (C, ...) tensors."""
    return torch.where(mask[:, None], a, b)


def _transition(vg, metric, z, g, pe, eps, max_depth, gen):
    """One NUTS transition of every chain. Returns the new (z, g, pe) and the statistics.

    A chain's phase-space point travels as one row [z, r, ∇U, U, v] (C, 4P + 1) (v = M⁻¹ r),
    so that keeping or replacing it for some chains is one ``torch.where``.
    """
    c, p = z.shape
    opts = dict(dtype=z.dtype, device=z.device)
    r0 = metric.momentum(torch.randn(c, p, generator=gen, **opts))
    v0 = metric.velocity(r0)
    energy0 = pe + 0.5 * (r0 * v0).sum(-1)  # (C,)
    start = torch.cat([z, r0, g, pe[:, None], v0], -1)  # (C, 4P + 1)
    zs, rs, gs, us, vs = slice(0, p), slice(p, 2 * p), slice(2 * p, 3 * p), 3 * p, \
        slice(3 * p + 1, 4 * p + 1)
    left, right, prop = start, start, start
    log_w = torch.zeros(c, **opts)
    r_sum = r0.clone()
    active = torch.ones(c, dtype=torch.bool, device=z.device)
    depth = torch.zeros(c, dtype=torch.long, device=z.device)
    diverged = torch.zeros_like(active)
    sum_accept = torch.zeros(c, **opts)
    n_leaves = torch.zeros(c, **opts)
    r_ck = torch.zeros(max(max_depth, 1), c, p, **opts)
    v_ck, rs_ck = torch.zeros_like(r_ck), torch.zeros_like(r_ck)
    for j in range(max_depth):
        if not bool(active.any()):
            break
        u = torch.rand(2 ** j + 2, c, generator=gen, **opts)  # the subtree's uniforms
        right_dir = u[-1] < 0.5  # (C,)
        step = (eps * torch.where(right_dir, 1.0, -1.0).to(eps))[:, None]  # (C, 1)
        cur = _where(right_dir, right, left)  # the edge the subtree grows from
        sub_w = torch.full((c,), -math.inf, **opts)
        sub_prop = prop
        sub_rsum = torch.zeros_like(r0)
        live = active.clone()
        all_live = bool(live.all())
        for n in range(2 ** j):
            zn, rn, gn, pen = _leapfrog(vg, metric, cur[:, zs], cur[:, rs], cur[:, gs], step)
            vn = metric.velocity(rn)
            leaf = torch.cat([zn, rn, gn, pen[:, None], vn], -1)
            delta = pen + 0.5 * (rn * vn).sum(-1) - energy0
            delta = torch.nan_to_num(delta, nan=math.inf)
            new_w = torch.logaddexp(sub_w, -delta)
            take = u[n] < torch.exp(-delta - new_w)
            if all_live:
                cur, sub_w = leaf, new_w
                sub_rsum = sub_rsum + rn
                sum_accept += torch.exp(-delta).clamp(max=1.0)
                n_leaves += 1.0
            else:
                cur = _where(live, leaf, cur)
                sub_w = torch.where(live, new_w, sub_w)
                sub_rsum = sub_rsum + rn * live[:, None]
                sum_accept += torch.exp(-delta).clamp(max=1.0) * live
                n_leaves += live
                take = take & live
            sub_prop = _where(take, leaf, sub_prop)
            hi = bin(n >> 1).count("1")
            lo = hi - (len(bin(n)) - len(bin(n).rstrip("1"))) + 1  # trailing ones of n
            if n % 2 == 0:
                r_ck[hi], v_ck[hi], rs_ck[hi] = rn, vn, sub_rsum
            bad = delta > _MAX_DELTA_ENERGY
            diverged |= bad & live
            for i in range(hi, lo - 1, -1):  # the sub-subtrees that end at this leaf
                rsum_i = sub_rsum - rs_ck[i] + r_ck[i] - 0.5 * (r_ck[i] + rn)
                bad |= ((v_ck[i] * rsum_i).sum(-1) <= 0) | ((vn * rsum_i).sum(-1) <= 0)
            live = live & ~bad
            all_live = bool(live.all())
            if not all_live and not bool(live.any()):
                break
        valid = active & live  # still live after the whole subtree: no U-turn, no divergence
        right = _where(active & right_dir, cur, right)
        left = _where(active & ~right_dir, cur, left)
        take = valid & (u[-2] < torch.exp(sub_w - log_w))
        prop = _where(take, sub_prop, prop)
        log_w = torch.where(valid, torch.logaddexp(log_w, sub_w), log_w)
        r_sum = r_sum + sub_rsum * active[:, None]
        depth = torch.where(valid, j + 1, depth)
        rs_all = r_sum - 0.5 * (left[:, rs] + right[:, rs])
        turned = ((left[:, vs] * rs_all).sum(-1) <= 0) | ((right[:, vs] * rs_all).sum(-1) <= 0)
        active = valid & ~turned
    stats = {"accept": sum_accept / n_leaves.clamp_min(1), "n_steps": n_leaves.long(),
             "tree_depth": depth, "diverging": diverged, "energy": energy0}
    return prop[:, zs], prop[:, gs], prop[:, us], stats


def _reasonable_step_size(vg, metric, z, g, pe, eps, gen):
    """Per chain, double or halve ε until one leapfrog step's acceptance crosses 1/2."""
    c, p = z.shape
    direction = None
    done = torch.zeros(c, dtype=torch.bool, device=z.device)
    for _ in range(30):
        r = metric.momentum(torch.randn(c, p, generator=gen, dtype=z.dtype, device=z.device))
        _, rn, _, pen = _leapfrog(vg, metric, z, r, g, eps[:, None])
        delta = (pen + metric.kinetic(rn)) - (pe + metric.kinetic(r))
        delta = torch.where(torch.isnan(delta), math.inf, delta)
        up = -delta > math.log(0.5)
        if direction is None:
            direction = up
        done |= up != direction
        if bool(done.all()):
            break
        eps = torch.where(done, eps, torch.where(direction, eps * 2, eps / 2))
    return eps


def run_batched(vg, init: torch.Tensor, *, num_samples: int, num_warmup: int, seed: int,
                target_accept_prob: float = 0.8, max_tree_depth: int = 10,
                inverse_mass: torch.Tensor | None = None, dense_mass: bool = False,
                progress=None) -> dict:
    """Run C NUTS chains together.

    Parameters
    ----------
    vg : callable
        ``vg(z (C, P)) -> (potential (C,), gradient (C, P))``.
    init : Tensor (C, P)
        Unconstrained starting points.
    inverse_mass : Tensor (P,) or (P, P), optional
        Initial inverse mass matrix (e.g. the Laplace approximation at the MAP).
    dense_mass : bool
        Adapt a dense mass matrix (else diagonal).
    progress : callable, optional
        Called with the number of chain-iterations done since the last call.

    Returns
    -------
    dict
        ``samples`` (C, S, P); ``stats`` of (C, S) arrays: ``diverging``, ``n_steps``,
        ``tree_depth``, ``step_size``, ``acceptance_rate``, ``energy``, ``lp``.
    """
    c, p = init.shape
    opts = dict(dtype=init.dtype, device=init.device)
    gen = torch.Generator(device=init.device).manual_seed(int(seed))
    if inverse_mass is None:
        inverse_mass = torch.ones(p, **opts)
    if dense_mass and inverse_mass.ndim == 1:
        inverse_mass = torch.diag(inverse_mass)
    if not dense_mass and inverse_mass.ndim == 2:
        inverse_mass = inverse_mass.diagonal()
    metric = _Metric(inverse_mass.expand(c, *inverse_mass.shape).clone())
    z = init.clone()
    pe, g = vg(z)
    eps = _reasonable_step_size(vg, metric, z, g, pe, torch.ones(c, **opts), gen)
    adapt = DualAveraging(eps, target_accept_prob)
    windows = set(mass_windows(num_warmup))
    welford = Welford(c, p, dense=dense_mass, **opts)
    samples = torch.empty(c, num_samples, p, **opts)
    keys = ("diverging", "n_steps", "tree_depth", "step_size", "acceptance_rate", "energy", "lp")
    stats = {k: [] for k in keys}
    for it in range(num_warmup + num_samples):
        z, g, pe, st = _transition(vg, metric, z, g, pe, eps, max_tree_depth, gen)
        if it < num_warmup:
            eps = adapt.update(st["accept"])
            welford.add(z)
            if it in windows:
                metric = _Metric(welford.inverse_mass())
                welford = Welford(c, p, dense=dense_mass, **opts)
                eps = _reasonable_step_size(vg, metric, z, g, pe, eps, gen)
                adapt.restart(eps)
            if it == num_warmup - 1:
                eps = adapt.final()
        else:
            samples[:, it - num_warmup] = z
            for key, value in (("diverging", st["diverging"]), ("n_steps", st["n_steps"]),
                               ("tree_depth", st["tree_depth"]), ("step_size", eps),
                               ("acceptance_rate", st["accept"]), ("energy", st["energy"]),
                               ("lp", -pe)):
                stats[key].append(value.clone())
        if progress is not None:
            progress(c)
    out = {k: torch.stack(v, 1).cpu().numpy() if v else None for k, v in stats.items()}
    return {"samples": samples, "stats": out}


def run_batched_chains(batched, inits: list[dict], *, constrain, seed: int, progress=None,
                       **kwargs) -> list[dict]:
    """:func:`run_batched` on a GaussianMixture's closed-form potential, per-chain results.

    ``batched(u_w, u_p, means) -> (U (C,), (grad_w, grad_p, grad_means))`` (the ``batched``
    attribute of :func:`~probmix.infer.mcmc.potential_full.full_potential_fn`); ``inits``
    one dict of unconstrained ``weights``, ``precisions``, ``means`` per chain; ``constrain``
    maps unconstrained values (any leading dims) to site values. Returns, per chain,
    ``{"samples": {site: (S, ...) numpy}, "stats": {name: (S,)}}``, as
    :func:`~probmix.infer.mcmc.nuts_chain.run_chain` does.
    """
    names = ("means", "precisions", "weights")  # sorted: the Laplace mass matrix's order
    shapes = [inits[0][n].shape for n in names]
    sizes = [math.prod(s) for s in shapes]
    c = len(inits)

    def vg(z):
        parts = [v.reshape(c, *s) for v, s in zip(torch.split(z, sizes, -1), shapes)]
        value, (g_w, g_p, g_m) = batched(parts[2], parts[1], parts[0])
        return value, torch.cat([g_m.reshape(c, -1), g_p.reshape(c, -1), g_w.reshape(c, -1)], -1)

    init = torch.stack([torch.cat([i[n].reshape(-1) for n in names]) for i in inits])  # (C, P)
    out = run_batched(vg, init, seed=seed, progress=progress, **kwargs)
    return per_chain(out, names, shapes, constrain)


def per_chain(out: dict, names, shapes, constrain) -> list[dict]:
    """Split a batched run's flat unconstrained samples (C, S, P) into constrained sites, one
    ``{"samples": {site: (S, ...)}, "stats": {name: (S,)}}`` per chain."""
    samples = out["samples"]
    c, s = samples.shape[:2]
    parts = torch.split(samples, [math.prod(shape) for shape in shapes], -1)
    with torch.no_grad():
        values = constrain({n: v.reshape(c, s, *shape) for n, v, shape in
                            zip(names, parts, shapes)})
    values = {n: v.cpu().numpy() for n, v in values.items()}
    return [{"samples": {n: v[ch] for n, v in values.items()},
             "stats": {k: v[ch] for k, v in out["stats"].items()}} for ch in range(c)]
