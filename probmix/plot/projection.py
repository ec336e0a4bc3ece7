"""The axes a figure shows: data columns, principal directions or discriminant directions.

A :class:`Projection` is an affine map ``x -> (x - center) @ axes.T`` (D -> m) with one
label per axis. Every direction is computed in the units the model was fitted in: a fit
made on standardised columns (``standardize=True``, the CLI's ``--standardize``) is
projected in those units, so one large-valued column does not make the whole first
principal axis. Labels say what an axis is, with the column names: "alcohol" for a
column, "PC1 (36% var, standardised columns): +0.49 flavanoids, +0.42 phenols, …" for a
direction (its three largest loadings, per fitted unit of each column).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Projection", "feature_labels", "fitted_scale"]


def feature_labels(fit, x, d: int) -> list[str]:
    """Column names: a DataFrame's, else the fit's ``feature_names``, else "feature 1", ...."""
    columns = getattr(x, "columns", None)
    for names in (list(columns) if columns is not None else None,
                  getattr(fit, "feature_names", None)):
        if names is not None and len(names) == d:
            return [str(n) for n in names]
    return [f"feature {j + 1}" for j in range(d)]


def fitted_scale(fit, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(center (D,), sd (D,), standardised) of the units the fit was made in."""
    st = (getattr(fit, "options", None) or {}).get("standardized") if fit is not None else None
    if st:
        return np.asarray(st["center"], dtype=float), np.asarray(st["sd"], dtype=float), True
    return x.mean(0), np.ones(x.shape[1]), False


def _loadings(direction: np.ndarray, sd: np.ndarray, names: list[str], top: int = 3) -> str:
    """"+0.62 a, -0.41 b, …": the largest loadings of a direction, per standardised column."""
    w = direction * sd                                           # (D,) per unit sd of each column
    w = w / (np.linalg.norm(w) or 1.0)
    order = np.argsort(-np.abs(w))[:top]
    more = ", …" if len(w) > top else ""
    return ", ".join(f"{w[j]:+.2f} {names[j]}" for j in order) + more


class Projection:
    """x (..., D) -> (..., m): ``(x - center) @ axes.T``, with one label per axis.

    Parameters
    ----------
    center : ndarray (D,)
    axes : ndarray (m, D)
    labels : list of str (m,)
    """

    def __init__(self, center, axes, labels):
        self.center = np.asarray(center, dtype=float)
        self.axes = np.asarray(axes, dtype=float)
        self.labels = tuple(labels)

    @classmethod
    def columns(cls, d: int, names: list[str], which=None) -> "Projection":
        """The data's own columns ``which`` (default all), labelled by name."""
        which = list(range(d)) if which is None else list(which)
        return cls(np.zeros(d), np.eye(d)[which], [names[j] for j in which])

    @classmethod
    def principal(cls, x: np.ndarray, fit=None, names=None, m: int = 2) -> "Projection":
        """The first m principal axes of x in the fit's units (standardised if it was)."""
        d = x.shape[1]
        names = names or [f"feature {j + 1}" for j in range(d)]
        center, sd, scaled = fitted_scale(fit, x)
        z = (x - x.mean(0)) / sd
        _, s, vt = np.linalg.svd(z, full_matrices=False)        # (min(N, D),), (., D)
        m = min(m, vt.shape[0])
        share = s**2 / max(np.sum(s**2), 1e-300)
        unit = "var, standardised columns" if scaled else "var"
        labels = [f"PC{i + 1} ({100 * share[i]:.0f}% {unit}): {_loadings(vt[i] / sd, sd, names)}"
                  for i in range(m)]
        return cls(x.mean(0), vt[:m] / sd, labels)              # (m, D): z-axis in x units

    @classmethod
    def discriminant(cls, fit, x: np.ndarray, names=None, m: int = 4) -> "Projection":
        """The first m directions along which the fitted components differ most.

        mclust's dimension reduction for mixtures (MclustDR): in units where the pooled
        within-component covariance W = Σ_k w_k Σ_k is the identity, the kernel
        M = B² + Σ_k w_k (Σ_k - I)² (B: between-component scatter of the means) weighs
        differences of means and of covariances; its leading eigenvectors, mapped back, are
        the directions (affine-invariant: the same for any units of x).
        """
        d = x.shape[1]
        names = names or [f"feature {j + 1}" for j in range(d)]
        w = np.asarray(fit.weights, dtype=float)                 # (K,)
        mu = np.asarray(fit.means, dtype=float)                  # (K, D)
        cov = np.asarray(fit.covariances, dtype=float)           # (K, D, D)
        within = np.einsum("k,kij->ij", w, cov)                  # (D, D)
        within += 1e-10 * np.trace(within) / d * np.eye(d)
        a = np.linalg.inv(np.linalg.cholesky(within))            # (D, D): a W aᵀ = I
        dm = (mu - w @ mu) @ a.T                                 # (K, D) whitened
        between = np.einsum("k,ki,kj->ij", w, dm, dm)
        dev = a @ cov @ a.T - np.eye(d)                          # (K, D, D)
        kernel = between @ between + np.einsum("k,kij,kjl->il", w, dev, dev)
        evals, evecs = np.linalg.eigh(kernel)                    # ascending
        m = min(m, d)
        dirs = (evecs[:, ::-1][:, :m].T @ a)                     # (m, D) in x units
        share = np.clip(evals[::-1], 0, None) / max(np.clip(evals, 0, None).sum(), 1e-300)
        sd = x.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        labels = [f"DR{i + 1} ({100 * share[i]:.0f}%): {_loadings(dirs[i], sd, names)}"
                  for i in range(m)]
        return cls(x.mean(0), dirs, labels)

    @classmethod
    def plane(cls, x: np.ndarray, fit=None, names=None) -> "Projection":
        """What a one-panel figure shows: the two columns for D == 2, else two principal axes."""
        if x.shape[1] == 2:
            return cls.columns(2, names or ["feature 1", "feature 2"])
        return cls.principal(x, fit, names, m=2)

    def points(self, x: np.ndarray) -> np.ndarray:
        """(..., D) -> (..., m)."""
        return (x - self.center) @ self.axes.T

    def covariances(self, cov: np.ndarray) -> np.ndarray:
        """(..., D, D) -> A Σ Aᵀ (..., m, m)."""
        return self.axes @ cov @ self.axes.T

    def label(self, ax, i: int = 0, j: int = 1) -> None:
        """Axis labels for the panel of axes i (x) and j (y); long labels get a smaller font."""
        for setter, text in ((ax.set_xlabel, self.labels[i]), (ax.set_ylabel, self.labels[j])):
            setter(text, fontsize="small" if len(text) > 30 else None)
