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

__all__ = ["Standardizer", "data_scale"]


def data_scale(x: torch.Tensor, center: torch.Tensor) -> float:
    """The root mean per-feature variance of ``x`` about ``center`` (1 when it is 0 or not finite)."""
    var = float(((x - center) ** 2).mean())
    return math.sqrt(var) if var > 0 and math.isfinite(var) else 1.0


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
        self.center = x.mean(0)
        self.scale = data_scale(x, self.center)
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
