"""The potential energy (negative log joint in unconstrained space) of a mixture program for HMC/NUTS.

For any program the potential comes from Pyro (``initialize_model``: the program
traced at every evaluation, ``z`` enumerated and summed out). For a
:class:`~probmix.GaussianMixture` the same function is written directly in torch
— the priors are the program's own distribution objects, the likelihood one
matrix product per chunk over the exponential-family features Φ(x) (see
:mod:`probmix.infer.map.em_steps`) — which is an order of magnitude faster than
re-tracing the program, and is tested equal to Pyro's potential to 1e-10.

Both use the same bijections to the unconstrained space (``biject_to`` of each
site's support; precisions through :mod:`probmix.model.transforms`).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import biject_to

from probmix.infer.map import em_steps
from probmix.infer.mcmc.potential_full import full_potential_fn
from probmix.model.gaussian_mixture import GaussianMixture, stick_breaking

__all__ = ["gmm_potential", "program_potential", "Potential"]


class Potential:
    """A potential energy with its site transforms.

    Attributes
    ----------
    fn : callable
        ``fn(params: dict[str, Tensor]) -> Tensor ()``, params in the unconstrained space.
    transforms : dict of str to Transform
        Unconstrained → constrained, per site.
    sites : list of str
    """

    def __init__(self, fn, transforms: dict, sites: list[str]):
        self.fn, self.transforms, self.sites = fn, transforms, sites

    def unconstrain(self, values: dict) -> dict:
        """Constrained site values → unconstrained parameters."""
        return {name: self.transforms[name].inv(values[name]).detach() for name in self.sites}

    def constrain(self, params: dict) -> dict:
        """Unconstrained parameters (any leading dims) → constrained site values."""
        return {name: self.transforms[name](params[name]) for name in self.sites}


def _base(distribution):
    """The innermost distribution under Independent/Expanded wrappers."""
    while hasattr(distribution, "base_dist"):
        distribution = distribution.base_dist
    return distribution


def gmm_potential(model: GaussianMixture, x: torch.Tensor, prior) -> Potential:
    """The potential of ``model``'s program on (standardised) data ``x`` with a fixed prior.

    Written out by hand (about a hundred tensor operations per evaluation instead of the
    seven hundred that composing distribution objects costs; HMC is bound by this overhead
    at moderate N). Site transforms are the ``biject_to`` bijections Pyro uses:

    - weights: stick-breaking (``biject_to(simplex)``); sticks (Dirichlet process): sigmoid;
    - full/tied precisions: v ↦ L (lower, exp on the diagonal) ↦ Λ = L Lᵀ, with
      log|J| = D log 2 + Σ_i (D - i + 1) v_ii (i = 1..D);
    - diag/spherical precisions: λ = exp(v), log|J| = Σ v.

    Log-densities: Wishart(ν, Ψ) from L (log|Λ| = 2 Σ log L_ii, tr(ΨΛ) = Σ (ΨL) ∘ L) or
    Gamma(a, b); the mean prior N(μ_k | m₀, (β₀Λ_k)⁻¹) and the likelihood both through the
    family's natural weights, log N(y | μ, Λ) = Φ(y) · W(μ, Λ).

    Parameters
    ----------
    model : GaussianMixture
    x : Tensor (N, D)
    prior : ResolvedPrior or None
        In the units of ``x`` (None: flat).
    """
    family = model.family
    k, d = model.n_components, x.shape[1]
    opts = dict(dtype=x.dtype, device=x.device)
    alpha = prior.alpha if prior is not None else torch.ones(k, **opts)
    dp = model.is_dirichlet_process
    weight_site = "sticks" if dp else "weights"
    matrix = family.precision_event_dims == 2
    precision_prior = family.precision_prior(prior, k, d)
    sites = [weight_site, "precisions", "means"]
    transforms = {weight_site: biject_to(dist.Beta(1.0, 1.0).support) if dp
                  else biject_to(dist.Dirichlet(alpha).support),
                  "precisions": biject_to(precision_prior.support),
                  "means": biject_to(dist.Normal(0.0, 1.0).support)}
    data = em_steps.PreparedData(x, family, shift=torch.zeros(d, **opts), scale=1.0)
    blocks = [phi for _, phi, _ in data.chunks()]  # Φ(x) (F, n) per chunk
    if sum(b.numel() for b in blocks) * x.element_size() <= 2**26:
        blocks = [torch.cat(blocks, 1)]  # one product when Φ is small
    rows, cols = torch.tril_indices(d, d, device=x.device)
    on_diag = rows == cols
    # vech → lower-triangular matrix as one product (an indexed assignment costs ~10x more)
    place = torch.zeros(len(rows), d * d, **opts)  # (M, D²)
    place[torch.arange(len(rows)), rows * d + cols] = 1.0
    diag_weight = (d - rows[on_diag] + 1).to(x.dtype) if matrix else None  # (D,): D, D-1, .., 1
    const = 0.0
    if dp:
        gamma = alpha[:-1]
        const += torch.log(gamma).sum()
    else:
        const += torch.lgamma(alpha.sum()) - torch.lgamma(alpha).sum()
    if prior is not None:
        beta, m0 = prior.mean_precision, prior.mean_loc
        const += 0.5 * k * d * torch.log(beta / (2 * math.pi))
        if matrix:
            nu, psi = prior.dof, prior.scale
            n_prec = 1 if family.tied else k
            const += n_prec * (-0.5 * nu * d * math.log(2.0) + 0.5 * nu * torch.logdet(psi)
                               - torch.mvlgamma(0.5 * nu, p=d))
        else:
            base = _base(precision_prior)
            a = base.concentration.expand(family.cov_shape(k, d))  # (K, D) or (K,)
            b = base.rate.expand(family.cov_shape(k, d))
            const += (a * torch.log(b) - torch.lgamma(a)).sum()
    const += math.log(2.0) * d * (1 if family.tied else k) if matrix else 0.0
    if matrix and not family.tied and not dp and prior is not None:  # one Wishart per component
        fast = full_potential_fn(transform=transforms["weights"], alpha=alpha, prior=prior,
                                 blocks=blocks, place=place, on_diag=on_diag,
                                 diag_weight=diag_weight, const=const, x=x)
        return Potential(fast, transforms, sites)

    def fn(params: dict) -> torch.Tensor:
        u_w, u_p, means = params[weight_site], params["precisions"], params["means"]
        if dp:
            sticks = torch.sigmoid(u_w)
            log_1m = -torch.nn.functional.softplus(u_w)  # log(1 - v)
            weights = stick_breaking(sticks)
            lp = ((gamma - 1) * log_1m).sum() + (torch.log(sticks) + log_1m).sum()  # + log|J|
        else:
            t = transforms[weight_site]
            weights = t(u_w)
            lp = ((alpha - 1) * torch.log(weights)).sum() + t.log_abs_det_jacobian(u_w, weights)
        if matrix:
            u_diag = u_p[..., on_diag]  # (..., D) = log L_ii
            chol = (torch.where(on_diag, u_p.exp(), u_p) @ place).view(*u_p.shape[:-1], d, d)
            lp = lp + (diag_weight * u_diag).sum()  # log|J| (the D log 2 is in const)
            if prior is not None:
                lp = lp + (nu - d - 1) * u_diag.sum() - 0.5 * ((psi @ chol) * chol).sum()
            prec_chol = chol
        else:
            lp = lp + u_p.sum()  # log|J| of exp
            if prior is not None:
                lp = lp + ((a - 1) * u_p - b * u_p.exp()).sum()
            prec_chol = (0.5 * u_p).exp()  # sqrt(λ)
        prec = family.precision_from_cholesky(prec_chol)
        log_det = family.log_det_precision(prec_chol, k, d)  # (K,)
        if prior is not None:  # log N(μ_k | m₀, (β₀Λ_k)⁻¹), the D/2 log(β₀/2π) is in const
            delta = means - m0  # (K, D)
            lp = lp + 0.5 * log_det.sum() - 0.5 * beta * (family.precision_times(prec, delta)
                                                           * delta).sum()
        w = family.natural_weights(means, prec_chol, log_weights=torch.log(weights))  # (K, F)
        for phi in blocks:
            lp = lp + torch.logsumexp(w @ phi, 0).sum()  # (K, n) → Σ_n log p(x_n)
        return -(lp + const)

    return Potential(fn, transforms, sites)


def program_potential(program, x: torch.Tensor, *, values: dict | None = None,
                      jit_compile: bool = False) -> Potential:
    """The potential of any mixture program, from Pyro's ``initialize_model`` (z enumerated).

    ``values`` (site values) are where Pyro's set-up trace is taken; needed when a site's
    prior cannot be sampled (improper flat priors).
    """
    from pyro.infer.autoguide.initialization import init_to_sample, init_to_value
    from pyro.infer.mcmc.util import initialize_model

    strategy = init_to_sample if values is None else init_to_value(values=values)
    _, fn, transforms, _ = initialize_model(program, model_args=(x,), max_plate_nesting=1,
                                            init_strategy=strategy, jit_compile=jit_compile,
                                            skip_jit_warnings=True)
    # Pyro's transforms map constrained → unconstrained; a Potential keeps the other direction
    return Potential(fn, {name: t.inv for name, t in transforms.items()}, list(transforms))
