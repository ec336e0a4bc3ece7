"""Constrained covariance estimates of the 14 parsimonious Gaussian mixture models.

Celeux & Govaert (1995) write each component covariance through its eigen-decomposition
Σ_k = λ_k D_k A_k D_kᵀ: volume λ_k > 0, orientation D_k (orthogonal), shape A_k (diagonal,
|A_k| = 1). Each of the three may be Equal across components or Variable, and the shape and
orientation may also be the Identity, which gives mclust's 14 names (volume, shape,
orientation): EII VII EEI VEI EVI VVI EEE VEE EVE VVE EEV VEV EVV VVV.

Every M-step here solves the same problem: given per-component scatter matrices W_k and
(pseudo-)counts n_k, minimise

    f(Σ) = Σ_k [ n_k log |Σ_k| + tr(Σ_k⁻¹ W_k) ]

over the covariances allowed by the model. With W_k = Σ_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ and
n_k = Σ_n r_nk this is the maximum-likelihood M-step. With a conjugate prior on each
component's precision (Wishart(ν₀, Ψ₀⁻¹), normal mean prior of precision β₀ Λ_k) the
posterior mode has the same form with W_k replaced by Ψ₀ + W_k + β₀ n_k / (β₀ + n_k)
(x̄_k - m₀)(x̄_k - m₀)ᵀ and n_k by n_k + ν₀ - D (see :mod:`probmix.model.covariance`), so
the same solver gives the MAP M-step of every model: the mode of the posterior under the
product of the components' conjugate priors, restricted to the model.

Closed forms (Celeux & Govaert 1995): EII, VII, EEI, VVI, EVI, EEE, EEV, EVV, VVV.
Iterated: VEI, VEV, VEE (alternating volume and shape/orientation updates, each a
closed-form coordinate minimisation, so f never increases), EVE and VVE (the common
orientation by exact plane rotations, Flury & Gautschi 1986, in place of mclust's
majorisation-minimisation step of Browne & McNicholas 2014, which needs hundreds of steps
to settle).

Shapes: ``scatter`` (..., K, D, D), ``counts`` (..., K); leading batch dimensions (e.g.
restarts) are allowed everywhere; every function returns covariances (..., K, D, D).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MODELS", "ITERATIVE", "constrained_covariances", "n_covariance_parameters",
           "objective"]

MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV",
          "EVV", "VVV")
ITERATIVE = ("VEI", "VEE", "VEV", "EVE", "VVE")

_INNER_MAX_ITER = 100
_INNER_TOL = 1e-10  # relative change of f between sweeps
_ANGLE_TOL = 1e-10  # EVE/VVE: a sweep whose plane rotations are all smaller changes nothing
# EVE/VVE inside EM, started at EM's current orientation: a few sweeps lower f enough for a
# generalised EM step (f never increases), and EM's own iterations finish the job
_WARM_SWEEPS = 5


def n_covariance_parameters(model: str, k: int, d: int) -> int:
    """Free covariance parameters of ``model`` with K components in D dimensions (mclust's).

    Volume: 1 (E) or K (V); shape: 0 (I), D - 1 (E) or K (D - 1) (V); orientation: 0 (I),
    D (D - 1) / 2 (E) or K D (D - 1) / 2 (V).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}; got {model!r}.")
    vol, shape, orient = model
    rot = d * (d - 1) // 2
    n = 1 if vol == "E" else k
    n += {"I": 0, "E": d - 1, "V": k * (d - 1)}[shape]
    n += {"I": 0, "E": rot, "V": k * rot}[orient]
    return n


def objective(cov: torch.Tensor, scatter: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """f(Σ) = Σ_k [n_k log|Σ_k| + tr(Σ_k⁻¹ W_k)], shape (...,); +inf where a Σ_k is singular."""
    chol, info = torch.linalg.cholesky_ex(cov)  # (..., K, D, D)
    bad = info != 0  # (..., K)
    chol = torch.where(bad[..., None, None], _eye(cov.shape[-1], cov), chol)
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (..., K)
    trace = torch.diagonal(torch.cholesky_solve(scatter, chol), dim1=-2, dim2=-1).sum(-1)
    value = (counts * log_det + trace).sum(-1)
    return torch.where(bad.any(-1), torch.full_like(value, torch.inf), value)


def _tiny(t: torch.Tensor) -> float:
    return float(torch.finfo(t.dtype).tiny) * 1e4


def _geometric_mean(v: torch.Tensor) -> torch.Tensor:
    """(Π_j v_j)^(1/D) over the last axis, in log space: (..., D) -> (...)."""
    return torch.exp(torch.log(v.clamp_min(_tiny(v))).mean(-1))


def _diagonal(m: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(m, dim1=-2, dim2=-1)


def _eye(d: int, ref: torch.Tensor) -> torch.Tensor:
    return torch.eye(d, dtype=ref.dtype, device=ref.device)


def _compose(volume, shape, orientation=None):
    """λ D A Dᵀ from volume (..., K) or (..., 1), shape (..., K or 1, D), orientation
    (..., K or 1, D, D) or None (identity), broadcast to (..., K, D, D)."""
    diag = volume[..., None] * shape  # (..., K, D)
    if orientation is None:
        return torch.diag_embed(diag)
    return (orientation * diag[..., None, :]) @ orientation.transpose(-1, -2)


def _eig_descending(w: torch.Tensor):
    """Eigenvalues (..., D) in decreasing order and the matching eigenvectors (..., D, D)."""
    values, vectors = torch.linalg.eigh(0.5 * (w + w.transpose(-1, -2)))
    return values.flip(-1).clamp_min(0.0), vectors.flip(-1)


def _to_numpy(t: torch.Tensor, batch, *tail) -> np.ndarray:
    """A float64 NumPy copy of ``t`` broadcast to batch + tail, batch flattened: (B, *tail)."""
    return t.to(dtype=torch.float64, device="cpu").expand(*batch, *tail).reshape(
        -1, *tail).numpy().copy()


def _to_torch(a: np.ndarray, ref: torch.Tensor, *shape) -> torch.Tensor:
    return torch.from_numpy(a).to(dtype=ref.dtype, device=ref.device).reshape(*shape)


def _variable_volume_common_shape(values, counts, d):
    """VEI / VEV: minimise Σ_k [n_k D log λ_k + Σ_j v_kj / (λ_k a_j)] with |A| = 1.

    ``values`` (..., K, D) are the diagonals of W_k (VEI) or its eigenvalues in decreasing
    order (VEV). Returns λ (..., K) and a (..., 1, D). Iterated in a compiled kernel
    (:func:`probmix.model._parsimonious_kernels.volume_shape_sweeps`).
    """
    from probmix.model._parsimonious_kernels import volume_shape_sweeps

    batch, k = values.shape[:-2], values.shape[-2]
    volume, shape = volume_shape_sweeps(_to_numpy(values, batch, k, d),
                                        _to_numpy(counts, batch, k), _INNER_MAX_ITER,
                                        _INNER_TOL)
    return _to_torch(volume, values, *batch, k), _to_torch(shape, values, *batch, 1, d)


def _vee(scatter, counts, d):
    """VEE: Σ_k = λ_k C with |C| = 1: alternate C ∝ Σ_k W_k / λ_k and λ_k = tr(C⁻¹ W_k) / (D n_k),
    in a compiled kernel (:func:`probmix.model._parsimonious_kernels.vee_sweeps`)."""
    from probmix.model._parsimonious_kernels import vee_sweeps

    batch, k = scatter.shape[:-3], scatter.shape[-3]
    volume, common = vee_sweeps(_to_numpy(scatter, batch, k, d, d), _to_numpy(counts, batch, k),
                                _INNER_MAX_ITER, _INNER_TOL)
    volume = _to_torch(volume, scatter, *batch, k)
    common = _to_torch(common, scatter, *batch, d, d)
    return volume[..., None, None] * common[..., None, :, :]


def _common_orientation(scatter, counts, d, equal_volume: bool, start=None):
    """EVE / VVE: Σ_k = λ_(k) D A_k Dᵀ with one orientation D for every component.

    The objective is not convex in D, and one start can end in a local minimum (on wine,
    13-D, 30 nats worse than mclust's fit). So the iteration runs from K + 1 starts at once:
    the eigenvectors of the pooled scatter Σ_k W_k and those of each W_k; the best is kept.
    """
    if start is not None:  # the current orientation: the eigenvectors of any one Σ_k
        orientation = torch.linalg.eigh(start[..., 0, :, :])[1]  # (..., D, D)
        return _common_orientation_from(scatter, counts, d, equal_volume, orientation,
                                        sweeps=_WARM_SWEEPS)
    _, pooled = _eig_descending(scatter.sum(-3))  # (..., D, D)
    _, own = _eig_descending(scatter)  # (..., K, D, D)
    starts = torch.cat([pooled[..., None, :, :], own], -3).movedim(-3, 0)  # (K + 1, ..., D, D)
    # a few sweeps from every start pick the basin; only the best start runs to convergence
    cov = _common_orientation_from(scatter.expand(starts.shape[0], *scatter.shape),
                                   counts.expand(starts.shape[0], *counts.shape), d,
                                   equal_volume, starts, sweeps=_WARM_SWEEPS)  # (K + 1, ..., K, D, D)
    best = objective(cov, scatter, counts).argmin(0)  # (...,)
    index = best[None, ..., None, None, None].expand(1, *cov.shape[1:])
    chosen = cov.gather(0, index)[0]  # (..., K, D, D)
    return _common_orientation_from(scatter, counts, d, equal_volume,
                                    torch.linalg.eigh(chosen[..., 0, :, :])[1])


def _common_orientation_from(scatter, counts, d, equal_volume: bool, orientation,
                             sweeps: int = _INNER_MAX_ITER):
    """One start of the EVE / VVE iteration from ``orientation`` (..., D, D).

    Alternates the closed-form volume and shape updates given D (A_k ∝ diag(Dᵀ W_k D)) with
    one sweep of plane rotations of D given them: for the columns (i, j) and M_k =
    (λ_k A_k)⁻¹, f restricted to a rotation by θ is c₀ + c₁ cos 2θ + c₂ sin 2θ, whose
    minimum is exact (the Jacobi-type coordinate descent of Flury & Gautschi 1986 for common
    principal components). Every step decreases f, and far fewer sweeps are needed than
    majorisation-minimisation steps (Browne & McNicholas 2014), which crawl near the optimum.
    The sweeps run in a compiled kernel (:mod:`probmix.model._parsimonious_kernels`), in float64
    on the CPU (the matrices are D×D per component), each batch member until it settles.
    """
    from probmix.model._parsimonious_kernels import orientation_sweeps

    batch = scatter.shape[:-3]
    k = scatter.shape[-3]
    rotated = orientation.transpose(-1, -2)[..., None, :, :] @ scatter \
        @ orientation[..., None, :, :]  # (..., K, D, D): B_k = Dᵀ W_k D
    rotated = _to_numpy(rotated, batch, k, d, d)
    rot = _to_numpy(orientation, batch, d, d)
    volume, shape = orientation_sweeps(rotated, rot, _to_numpy(counts, batch, k), equal_volume,
                                       int(sweeps), _INNER_TOL, _ANGLE_TOL)
    return _compose(_to_torch(volume, scatter, *batch, k), _to_torch(shape, scatter, *batch, k, d),
                    _to_torch(rot, scatter, *batch, 1, d, d))


def constrained_covariances(model: str, scatter: torch.Tensor, counts: torch.Tensor, *,
                            start: torch.Tensor | None = None) -> torch.Tensor:
    """The covariances of ``model`` that minimise Σ_k [n_k log|Σ_k| + tr(Σ_k⁻¹ W_k)].

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    scatter : Tensor (..., K, D, D)
        Symmetric positive semi-definite W_k (positive definite for the models with a
        variable orientation or an inverse, or the estimate is singular).
    counts : Tensor (..., K)
        Positive n_k.
    start : Tensor (..., K, D, D), optional
        Covariances of the model to start the iterated models from (EM passes its current
        ones): EVE and VVE then run from their common orientation alone, which keeps EM
        monotone and the M-step to a few sweeps; without it they run from K + 1 starts.

    Returns
    -------
    Tensor (..., K, D, D)
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}; got {model!r}.")
    d = scatter.shape[-1]
    total = counts.sum(-1)  # (...,)
    vol, shape_kind, orient = model
    if model == "VVV":
        return scatter / counts[..., None, None]
    if model == "EEE":
        return (scatter.sum(-3) / total[..., None, None])[..., None, :, :].expand_as(scatter)
    if orient == "I":  # diagonal models: only the diagonals of W_k matter
        w = _diagonal(scatter)  # (..., K, D)
        if shape_kind == "I":  # EII, VII
            if vol == "E":
                lam = (w.sum((-1, -2)) / (d * total))[..., None].expand(*w.shape[:-1])
            else:
                lam = w.sum(-1) / (d * counts)
            return _compose(lam, torch.ones_like(w))
        if model == "VVI":
            return torch.diag_embed(w / counts[..., None])
        if model == "EEI":
            return torch.diag_embed((w.sum(-2) / total[..., None])[..., None, :].expand_as(w))
        if model == "EVI":  # λ = Σ_k |diag W_k|^(1/D) / n, A_k ∝ diag W_k
            root = _geometric_mean(w)  # (..., K)
            lam = (root.sum(-1) / total)[..., None]  # (..., 1)
            return torch.diag_embed(lam[..., None] * w / root[..., None].clamp_min(_tiny(w)))
        volume, shape = _variable_volume_common_shape(w, counts, d)  # VEI
        return _compose(volume, shape.expand_as(w))
    if model == "EVV":  # C_k = W_k / |W_k|^(1/D), λ = Σ_k |W_k|^(1/D) / n
        root = _geometric_mean(torch.linalg.eigvalsh(scatter))  # (..., K): |W_k|^(1/D)
        return scatter / root[..., None, None] * (root.sum(-1) / total)[..., None, None, None]
    if orient == "V":  # EEV, VEV: D_k from the eigenvectors of W_k, A from the pooled eigenvalues
        values, vectors = _eig_descending(scatter)  # (..., K, D), (..., K, D, D)
        if vol == "E":  # EEV
            pooled = values.sum(-2, keepdim=True)  # (..., 1, D)
            root = _geometric_mean(pooled)  # (..., 1)
            shape = pooled / root[..., None]
            volume = (root / total[..., None]).expand(*values.shape[:-1])  # (..., K)
        else:
            volume, shape = _variable_volume_common_shape(values, counts, d)
        return _compose(volume, shape.expand_as(values), vectors)
    if model == "VEE":
        return _vee(scatter, counts, d)
    return _common_orientation(scatter, counts, d, equal_volume=vol == "E",
                               start=start)  # EVE, VVE
