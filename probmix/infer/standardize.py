"""Run a GaussianMixture engine on standardised data and map its results back.

Gradient-based engines (SVI's Adam steps, NUTS's step size and mass matrix) take
steps of a fixed size in parameter space, so their accuracy would depend on the
units of the data. They work in x' = (x - center) / scale instead, one scalar
scale (the root mean per-feature variance), with the prior mapped by
:meth:`ResolvedPrior.affine`. Because the default prior is itself scaled to the
data, the posterior in x' is exactly the image of the posterior in x:
μ = μ' · scale + center, Λ = Λ' / scale², weights unchanged, and
log p(x) = log p(x') - N · D · log(scale).
"""

from __future__ import annotations

import math

import torch

from probmix.infer.distributed import LocalReducer

__all__ = ["Standardizer", "data_scale", "scale_from_variance", "standardisation"]


def scale_from_variance(var: float) -> float:
    """√var, or 1 when the mean per-feature variance is 0 or not finite (constant data)."""
    scale = math.sqrt(var) if var > 0 and math.isfinite(var) else 1.0
    return scale if math.isfinite(scale) and scale > 0 else 1.0


def standardisation(x: torch.Tensor, *, sample_weight=None, reducer=None, shift=None,
                    scale=None):
    """The shift (D,) and scalar scale of x' = (x - shift) / scale, summed over processes.

    The one definition every engine standardises with (EM's ``PreparedData``, streamed EM's
    ``scan``, and the :class:`Standardizer` of SVI and NUTS).

    Parameters
    ----------
    x : Tensor (N, D)
        This process's rows.
    sample_weight : Tensor (N,), optional
    reducer : LocalReducer or ProcessGroupReducer, optional
        Sums over processes (default: this process only).
    shift : Tensor (D,), optional
        Default: the (weighted) mean.
    scale : float, optional
        Default: the root mean per-feature variance about ``shift`` (1 for constant data).

    Returns
    -------
    shift : Tensor (D,)
    scale : float
    """
    reducer = LocalReducer() if reducer is None else reducer
    if shift is None:
        w = sample_weight
        sums = torch.cat([(x.sum(0) if w is None else w @ x),
                          x.new_tensor([float(x.shape[0]) if w is None else w.sum()])])
        reducer.sum_(sums)
        shift = sums[:-1] / sums[-1]
    if scale is None:
        sq = x.new_tensor([float(((x - shift) ** 2).sum()), float(x.numel())])
        reducer.sum_(sq)
        scale = scale_from_variance(float(sq[0] / sq[1].clamp_min(1)))
    return shift, scale


def data_scale(x: torch.Tensor, center: torch.Tensor) -> float:
    """The root mean per-feature variance of ``x`` about ``center`` (1 when it is 0 or not finite)."""
    return standardisation(x, shift=center)[1]


class Standardizer:
    """The map x' = (x - center) / scale and its action on GaussianMixture site values.

    Parameters
    ----------
    x : Tensor (N, D)

    Attributes
    ----------
    x : Tensor (N, D)
        The standardised data.
    center : Tensor (D,)
    scale : float
    """

    def __init__(self, x: torch.Tensor):
        self.center, self.scale = standardisation(x)
        self.x = (x - self.center) / self.scale
        self.n, self.d = x.shape

    @property
    def log_jacobian(self) -> float:
        """log p(x) - log p(x') = -N · D · log(scale)."""
        return -self.n * self.d * math.log(self.scale)

    def to_standard(self, values: dict) -> dict:
        """Site values (weights, means, precisions, sticks) in original units → standardised."""
        out = dict(values)
        if "means" in out:
            out["means"] = (out["means"] - self.center) / self.scale
        if "precisions" in out:
            out["precisions"] = out["precisions"] * self.scale**2
        return out

    def to_original(self, values: dict) -> dict:
        """Site values or draws (any leading dims) in standardised units → original units."""
        out = dict(values)
        if "means" in out:
            out["means"] = out["means"] * self.scale + self.center.to(out["means"])
        if "precisions" in out:
            out["precisions"] = out["precisions"] / self.scale**2
        return out
