"""The Laplace approximation of a GaussianMixture's posterior as a full-rank Gaussian guide.

``guide="laplace"`` (SVI's default for a :class:`~probmix.GaussianMixture`): a
multivariate Normal over all the unconstrained global sites (Pyro's
``AutoMultivariateNormal``) with its location at the MAP and its scale_tril the Cholesky
factor of H⁻¹, H the Hessian of the potential at the MAP (from
:func:`~probmix.infer.mcmc.nuts_chain.laplace_inverse_mass`, on the closed-form potential
:func:`~probmix.infer.mcmc.potential.gmm_potential`). It is used as it is: at N in the
hundreds to thousands the posterior in the unconstrained space is close to it, and
stochastic steps from there only add their own noise. Measured against NUTS
(``benchmarks/bench_vi.py``), with Adam's default lr = 0.01 the mean of a guide started here
drifted by 0.46 posterior sd on the walkthrough data (the posterior sd of a mean is 0.005 in
standardised units, each step moves it by about lr), 0.07 at lr = 3e-5; the approximation
alone is within 0.05.
"""

from __future__ import annotations

import torch
from pyro.nn import PyroParam

__all__ = ["start_at_laplace"]


def start_at_laplace(guide, model, x: torch.Tensor, prior, values: dict) -> bool:
    """Set an ``AutoMultivariateNormal``'s location and scale to the Laplace approximation.

    Parameters
    ----------
    guide : AutoMultivariateNormal
        Already set up (called once) on ``model``'s program for ``x``.
    model : GaussianMixture
    x : Tensor (N, D)
        The (standardised) data the guide's program sees.
    prior : ResolvedPrior or None
        The prior in the units of ``x``.
    values : dict
        The MAP site values (units of ``x``).

    Returns
    -------
    bool
        Whether the guide was changed: False when its sites or transforms do not line up
        with the potential's (then it keeps its own start), or the Hessian is not positive
        definite.
    """
    from probmix.infer.mcmc.nuts_chain import laplace_inverse_mass
    from probmix.infer.mcmc.potential import gmm_potential

    potential = gmm_potential(model, x, prior)
    at = potential.unconstrain({n: values[n] for n in potential.sites})
    shapes = guide._unconstrained_shapes  # the guide's sites in its own order
    if set(shapes) != set(at):
        return False
    loc = torch.cat([at[n].reshape(-1) for n in shapes]).to(guide.loc)
    if loc.shape != guide.loc.shape or not torch.allclose(loc, guide.loc.detach(), atol=1e-6):
        return False  # another parametrisation: leave the guide as it is
    with torch.enable_grad():
        cov = laplace_inverse_mass(potential, at, dense=True)  # sorted site order
    names = sorted(at)
    sizes = {n: at[n].numel() for n in names}
    offsets = dict(zip(names, torch.cumsum(torch.tensor([0] + [sizes[n] for n in names]), 0)))
    order = torch.cat([torch.arange(int(offsets[n]), int(offsets[n]) + sizes[n])
                       for n in shapes])  # guide position -> sorted position
    cov = cov[order][:, order].to(guide.loc)
    chol, info = torch.linalg.cholesky_ex(cov)
    if int(info) != 0:
        return False
    scale = chol.diagonal()
    guide.scale = PyroParam(scale.detach().clone(), guide.scale_constraint)
    guide.scale_tril = PyroParam((chol / scale[:, None]).detach().clone(),
                                 guide.scale_tril_constraint)
    return True
