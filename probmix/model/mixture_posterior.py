"""The conjugate posterior of the whole Gaussian mixture given its assignments' statistics.

For the model's own prior (:mod:`probmix.model.priors`), given summed statistics
s = Σ_n r_n Φ(x_n) (counts, sums and quadratic sums per component; r hard
assignments for Gibbs, responsibilities for CAVI), the posterior of the global
sites factorises into the weights' posterior (:mod:`probmix.model.weights`) and,
per covariance family, the Normal-Wishart or Normal-Gamma posterior of the means
and precisions (:meth:`~probmix.model.covariance.base.CovarianceFamily.posterior`).

This is CAVI's global coordinate update and Gibbs's parameter conditional alike;
:func:`draw` samples it (Gibbs's parameter block, and CAVI's draws from q) from one
``torch.Generator``, all Gamma variates of a draw in one batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from probmix.model import weights as weights_posterior
from probmix.model.random_variates import log_standard_gamma

__all__ = ["MixturePosterior", "update", "draw"]


class MixturePosterior(NamedTuple):
    """Parameters of the posterior of weights, means and precisions (leading batch dims allowed).

    conc : (..., K) Dirichlet concentration, or (..., 2, K-1) Beta(conc[0], conc[1]) per stick
    means : (..., K, D) m_k; beta : (..., K) β_k
    shape, inv : the precision posterior's (ν, W⁻¹) or (a, b)
        (:mod:`probmix.model.covariance.conjugate`)

    It has the fields of a :class:`~probmix.model.covariance.base.ComponentPosterior`, so the
    family's methods take it as it is.
    """

    conc: torch.Tensor
    means: torch.Tensor
    beta: torch.Tensor
    shape: torch.Tensor
    inv: torch.Tensor


def update(family, s: torch.Tensor, prior, *, ridge: float = 0.0) -> MixturePosterior:
    """The posterior from summed statistics.

    Parameters
    ----------
    family : CovarianceFamily
    s : Tensor (..., K, F)
        Σ_n r_n Φ(x_n): counts ``s[..., 0]``, sums, quadratic sums.
    prior : ResolvedPrior
        Proper, in the coordinates of ``s``.
    ridge : float
        Adds n_k · ridge · I to each scatter (see ``CovarianceFamily.posterior``).

    Returns
    -------
    MixturePosterior
    """
    d = prior.mean_loc.shape[-1]
    nk, sx, sq = s[..., 0], s[..., 1:1 + d], s[..., 1 + d:]  # (..., K) (..., K, D) (..., K, F_q)
    components = family.posterior(nk, sx, sq, prior, ridge=ridge)
    return MixturePosterior(weights_posterior.posterior_concentration(nk, prior), *components)


def draw(family, post: MixturePosterior, stick: bool, gen: torch.Generator):
    """One draw of (log π, μ, U) per batch member B of ``post``.

    Parameters
    ----------
    family : CovarianceFamily
    post : MixturePosterior
        With one leading batch dim (B,) on every field (expand a single posterior to draw
        B times).
    stick : bool
        Whether ``post.conc`` holds stick-breaking Beta parameters.
    gen : torch.Generator
        The only source of randomness.

    Returns
    -------
    log_weights : Tensor (B, K)
    means : Tensor (B, K, D)
    prec_chol : Tensor (B, native)
    """
    b = post.means.shape[0]
    shapes_w = weights_posterior.gamma_shapes(post.conc, stick)  # (B, Gw)
    shapes_p = family.draw_shapes(post)  # (B, ...)
    # one batch of Gamma variates for the weights and the precisions: (B, Gw + Gp)
    log_g = log_standard_gamma(torch.cat([shapes_w, shapes_p.reshape(b, -1)], -1), gen)
    log_w = weights_posterior.log_weights_from_gammas(log_g[:, :shapes_w.shape[1]], stick)
    means, prec_chol = family.draw(post, log_g[:, shapes_w.shape[1]:].reshape(shapes_p.shape),
                                   gen)
    return log_w, means, prec_chol
