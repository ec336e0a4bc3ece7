"""Undo label switching: permute the components of every posterior draw to a reference order.

A mixture's likelihood is unchanged when its components are permuted, so a
sampler (or several chains, or a variational fit started elsewhere) may visit
the K! symmetric copies of each mode. Averages over draws then mix components
and multi-chain diagnostics such as r_hat are meaningless.

Method (Stephens-style pivotal relabelling): for each draw s, find the
permutation σ_s of its components that minimises the summed squared distance
between the draw's component signatures and the reference's,

    σ_s = argmin_σ Σ_k ω_k ‖ (sig_s[σ(k)] - ref[k]) / spread ‖²,

solved exactly by the Hungarian algorithm (scipy's ``linear_sum_assignment``),
and apply σ_s to every component-indexed site of that draw. The signature of a
component is its whole parameter for a Gaussian mixture (mean, log weight and log
variances; see :meth:`~probmix.model.interface.MixtureModel.relabel_signatures`), any
component-indexed sites, flattened, for other programs. ``spread`` puts every coordinate in units of
its posterior standard deviation: it starts as the spread of the reference
across components, and is then re-estimated from the relabelled draws (pooled
within-component standard deviation) until the permutations stop changing (at
most 4 passes), so a coordinate whose components differ by less than their
posterior noise (e.g. nearly equal weights) cannot drown a well-separated one.
ω_k is the reference weight of component k (plus a floor of 1/(100 K)): an empty
component's mean is a draw from its prior, anywhere, and must not pull an
occupied component onto the wrong label (Dirichlet-process fits, K too large). The reference starts as the MAP solution (MCMC) or the point estimate
(SVI) and is then replaced by the average of the relabelled draws (signatures
and weights), repeating until no label changes (at most 10 rounds; Stephens
2000, Celeux et al. 2000): a MAP that splits one occupied cluster over several
components, as a stick-breaking prior allows, stops being imposed on draws
that keep it in one. The loop runs over draws, never over data points.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["relabel_draws", "permutations_to_reference", "apply_permutations",
           "relabel_assignments"]


def permutations_to_reference(signatures: np.ndarray, reference: np.ndarray,
                              weights: np.ndarray | None = None) -> np.ndarray:
    """Best permutation of each draw's components onto the reference.

    Parameters
    ----------
    signatures : ndarray (C, S, K, P)
        A P-vector per component per draw (e.g. the means, P = D).
    reference : ndarray (K, P)
    weights : ndarray (K,), optional
        Reference weights ω_k of the components (default: equal).

    Returns
    -------
    ndarray (C, S, K) int
        ``perm[c, s, k]`` is the draw's component that becomes component k.
    """
    signatures = np.asarray(signatures, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    c, s, k, p = signatures.shape
    if reference.shape != (k, p):
        raise ValueError(f"reference must have shape ({k}, {p}); got {reference.shape}.")
    omega = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=np.float64)
    omega = omega / omega.sum() + 1.0 / (100 * k)  # (K,)
    spread = reference.std(0) if k > 1 else np.ones(p)
    perms = None
    for _ in range(4):
        spread = np.where(spread > 0, spread, 1.0)
        sig = (signatures / spread).reshape(c * s, k, p)
        ref = reference / spread
        # cost[i, j, l]: distance from reference component j to the draw's component l
        cost = ((ref[None, :, None, :] - sig[:, None, :, :]) ** 2).sum(-1)  # (C·S, K, K)
        cost *= omega[None, :, None]
        new = np.empty((c * s, k), dtype=np.int64)
        for i in range(c * s):
            _, new[i] = linear_sum_assignment(cost[i])
        if perms is not None and np.array_equal(new, perms):
            break
        perms = new
        ordered = np.take_along_axis(signatures.reshape(c * s, k, p), perms[..., None], axis=1)
        var = ((ordered - ordered.mean(0)) ** 2).mean(0)  # (K, P)
        spread = np.sqrt((omega[:, None] * var).sum(0) / omega.sum())  # (P,) pooled sd
    return perms.reshape(c, s, k)


def apply_permutations(value: np.ndarray, perms: np.ndarray, axis: int) -> np.ndarray:
    """Reorder the component axis of a draws array.

    Parameters
    ----------
    value : ndarray (C, S, ...)
    perms : ndarray (C, S, K)
    axis : int
        The component axis of ``value`` (negative, counted from the end).
    """
    value = np.asarray(value)
    axis = axis % value.ndim
    c, s, k = perms.shape
    index = perms.reshape((c, s) + (1,) * (axis - 2) + (k,) + (1,) * (value.ndim - axis - 1))
    return np.take_along_axis(value, index, axis=axis)


def relabel_draws(draws: dict, reference: np.ndarray, component_axes: dict, *,
                  signature: str | None = None, signatures: np.ndarray | None = None,
                  weights: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Permute the components of every draw to match ``reference``.

    Parameters
    ----------
    draws : dict of str to ndarray (C, S, ...)
    reference : ndarray (K, P)
        Reference signatures (e.g. the MAP means).
    component_axes : dict of str to int
        For each component-indexed site, its component axis (negative); sites not listed
        (e.g. a tied covariance) are left as they are.
    signature : str, optional
        The site whose values are the signatures (e.g. "means"); by default every site in
        ``component_axes`` flattened per component, in order.
    signatures : ndarray (C, S, K, P), optional
        The signatures themselves (e.g. a model's
        :meth:`~probmix.model.interface.MixtureModel.relabel_signatures`); overrides
        ``signature``.
    weights : ndarray (K,), optional
        Reference weights of the components (see :func:`permutations_to_reference`).

    Returns
    -------
    draws : dict
        Relabelled copies.
    perms : ndarray (C, S, K)
    """
    if signatures is not None:
        sig = np.asarray(signatures, dtype=np.float64)  # (C, S, K, P)
    else:
        parts = []
        for name in [signature] if signature is not None else list(component_axes):
            v = np.moveaxis(np.asarray(draws[name], dtype=np.float64), component_axes[name], 2)
            parts.append(v.reshape(*v.shape[:3], -1))
        sig = np.concatenate(parts, -1)  # (C, S, K, P)
    reference = np.asarray(reference, dtype=np.float64).reshape(sig.shape[2], -1)
    weight_draws = draws.get("weights") if "weights" in component_axes else None
    perms = None
    for _ in range(10):
        new = permutations_to_reference(sig, reference, weights)
        if perms is not None and np.array_equal(new, perms):
            break
        perms = new
        reference = apply_permutations(sig, perms, -2).mean((0, 1))  # (K, P)
        if weight_draws is not None:
            weights = apply_permutations(weight_draws, perms, -1).mean((0, 1))  # (K,)
    out = {name: (apply_permutations(v, perms, component_axes[name]) if name in component_axes
                  else v) for name, v in draws.items()}
    return out, perms


def relabel_assignments(z: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Apply the permutations of :func:`relabel_draws` to sampled assignments.

    Parameters
    ----------
    z : ndarray (C, S, N) int
        Each draw's component of each point, in the draw's own labels.
    perms : ndarray (C, S, K)

    Returns
    -------
    ndarray (C, S, N)
        The same assignments in the reference's labels.
    """
    inverse = np.argsort(perms, axis=-1)  # (C, S, K): the draw's label -> the reference's
    return np.take_along_axis(inverse, z.astype(np.int64), axis=-1).astype(z.dtype)
