"""MeanShift: every seed climbs the kernel density estimate at once.

Each iteration moves all active seeds together to the kernel-weighted mean of
the data: the weights come from the kernel of the (seeds x points) distance
matrix, built in blocks of seeds so that memory stays O(block x N). Seeds
whose step falls under ``1e-3 * bandwidth`` freeze. The modes found are then
merged as scikit-learn does (sorted by support, a mode suppresses every other
mode within one bandwidth) and each point takes the label of its nearest mode.

The ascent itself is in :mod:`probmix.baselines.meanshift_ascent`. Mean shift is
deterministic: no step draws random numbers.

With ``kernel="flat"`` this is scikit-learn's ``MeanShift`` (same seeds, same
stopping rule, same merging), so both give the same centres and labels.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch

from probmix.baselines.meanshift_ascent import (KERNELS, _ascend, _bin_seeds,
                                                _estimate_bandwidth, _merge_modes, _nearest)
from probmix._random import torch_seed
from probmix.baselines.loaded import check_loaded_centres
from probmix.io import persistence
from probmix.io.data import as_data, check_n_features, check_squares_finite
from probmix.exceptions import ConvergenceWarning
from probmix._validation import check_int, check_seed

__all__ = ["MeanShift", "estimate_bandwidth"]

def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__}).")
    return bool(value)


_MAX_BANDWIDTH = math.sqrt(np.finfo(np.float64).max) / 4


def _check_bandwidth(bandwidth, *, allow_none: bool):
    if bandwidth is None and allow_none:
        return None
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, numbers.Real):
        raise TypeError(f"bandwidth must be a number > 0{' or None' if allow_none else ''}; "
                        f"got {bandwidth!r} ({type(bandwidth).__name__}).")
    if not math.isfinite(bandwidth) or bandwidth <= 0:
        raise ValueError(
            f"bandwidth must be a finite number > 0{' or None (estimated)' if allow_none else ''}; "
            f"got {bandwidth!r}. Pass e.g. bandwidth=estimate_bandwidth(x)."
        )
    if bandwidth > _MAX_BANDWIDTH:
        raise ValueError(
            f"bandwidth={bandwidth:g} is so large that its square overflows float64 (at most "
            f"{_MAX_BANDWIDTH:.3g}); every point would be one mode. Pass e.g. "
            "bandwidth=estimate_bandwidth(x)."
        )
    return float(bandwidth)


def _check_quantile(quantile) -> float:
    if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real) \
            or not 0 <= quantile <= 1:
        raise ValueError(f"quantile must be a number in [0, 1]; got {quantile!r}. "
                         "0.3 is the usual choice; smaller gives a narrower bandwidth.")
    return float(quantile)


# ----------------------------------------------------------------------------- bandwidth


def estimate_bandwidth(x, *, quantile: float = 0.3, n_samples: int | None = None, seed=0,
                       device=None, dtype=None) -> float:
    """Bandwidth for mean shift: mean distance of the points to their k-th nearest neighbour.

    ``k = max(1, int(N * quantile))``, where each point counts as its own
    first neighbour (scikit-learn's ``estimate_bandwidth``). Takes O(N^2)
    time, in row blocks of bounded memory; pass ``n_samples`` to use a random
    subset on large data.

    Parameters
    ----------
    x : array-like, shape (N, D)
    quantile : float in [0, 1], default 0.3
    n_samples : int, optional
        Size of the random subset used; default all rows.
    seed : int, default 0
        Seed of the subset draw.
    device, dtype : optional
        Where and in which precision to compute.

    Returns
    -------
    float
    """
    quantile = _check_quantile(quantile)
    seed = check_seed(seed)
    x = as_data(x, name="x", device=device, dtype=dtype)
    if n_samples is not None:
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        if n_samples < x.shape[0]:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(0 if seed is None else torch_seed(seed))
            x = x[torch.randperm(x.shape[0], generator=gen, device=x.device)[:n_samples]]
    return _estimate_bandwidth(x, quantile)


# ----------------------------------------------------------------------------- estimator


@persistence.register("MeanShift")
class MeanShift(persistence.AttributeState):
    """Mean-shift clustering, all seeds moving together.

    Parameters
    ----------
    bandwidth : float, optional
        Kernel scale: the radius of the flat kernel, the standard deviation of
        the Gaussian one. Default: :func:`estimate_bandwidth` of the data with ``quantile``.
    quantile : float in [0, 1], default 0.3
        The quantile :func:`estimate_bandwidth` uses when ``bandwidth`` is None: with more
        than about three clusters, pass one below the share of the smallest cluster.
    kernel : {"gaussian", "flat"}, default "gaussian"
    seeds : array-like, shape (S, D), optional
        Starting positions; default every point (or the bins, see ``bin_seeding``).
    bin_seeding : bool, default False
        Start from the centres of the grid cells of side ``bandwidth`` holding at
        least ``min_bin_freq`` points instead of from every point (fewer seeds).
    min_bin_freq : int, default 1
    cluster_all : bool, default True
        If False, points farther than one bandwidth from every mode get label -1.
    max_iter : int, default 300
        Most mean-shift steps per seed.
    keep_path : bool, default False
        Store the seed positions after every step in ``path_``.
    seed : int, optional
        Accepted, like every probmix estimator's ``seed=``, and saved; it has no effect,
        because mean shift draws no random numbers (the same data and settings always give
        the same modes).
    device : str or torch.device, optional
    dtype : torch.float32 or torch.float64, optional

    Attributes
    ----------
    cluster_centers_ : ndarray, shape (K, D)
        Modes, by decreasing support.
    labels_ : ndarray, shape (N,), int64
    bandwidth_ : float
    n_iter_ : int
        Mean-shift steps taken by the slowest seed, the last (converging) step
        included; scikit-learn counts one fewer.
    path_ : ndarray, shape (n_iter_ + 1, S, D), or None
        Seed positions at the start and after each step (``keep_path=True``).
    """

    def __init__(self, *, bandwidth=None, quantile=0.3, kernel="gaussian", seeds=None,
                 bin_seeding=False, min_bin_freq=1, cluster_all=True, max_iter=300,
                 keep_path=False, seed=None, device=None, dtype=None):
        self.bandwidth = _check_bandwidth(bandwidth, allow_none=True)
        self.quantile = _check_quantile(quantile)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}; got {kernel!r}.")
        self.kernel = kernel
        self.seeds = seeds
        self.bin_seeding = _check_bool(bin_seeding, "bin_seeding")
        self.min_bin_freq = check_int(min_bin_freq, "min_bin_freq", minimum=1)
        self.cluster_all = _check_bool(cluster_all, "cluster_all")
        self.max_iter = check_int(max_iter, "max_iter", minimum=1)
        self.keep_path = _check_bool(keep_path, "keep_path")
        self.seed = check_seed(seed)
        self.device = device
        self.dtype = dtype

    def fit(self, x):
        """Find the modes of ``x`` and label every point.

        Parameters
        ----------
        x : array-like, shape (N, D)

        Returns
        -------
        self
        """
        self._fit(x, stacklevel=3)
        return self

    def fit_predict(self, x) -> np.ndarray:
        """Fit and return ``labels_``, shape (N,)."""
        self._fit(x, stacklevel=3)
        return self.labels_

    def _fit(self, x, *, stacklevel: int):
        x = as_data(x, name="x", device=self.device, dtype=self.dtype)
        check_squares_finite(x)  # squared distances must neither overflow nor underflow
        bandwidth = self.bandwidth
        if bandwidth is None:
            bandwidth = _estimate_bandwidth(x, self.quantile)
            if not bandwidth > 0:
                raise ValueError("The estimated bandwidth is 0 (too many duplicate points); "
                                 "pass bandwidth=... explicitly.")
        if self.seeds is not None:
            seeds = as_data(self.seeds, name="seeds", device=x.device, dtype=x.dtype)
            check_n_features(seeds, x.shape[1], name="seeds")
        elif self.bin_seeding:
            seeds = _bin_seeds(x, bandwidth, self.min_bin_freq, stacklevel + 1)
        else:
            seeds = x
        mean = x.mean(0)  # (D,) work in a centred frame for accurate distances
        pos, support, n_iter, converged, path = _ascend(
            x - mean, seeds - mean, bandwidth=bandwidth, kernel=KERNELS[self.kernel],
            max_iter=self.max_iter, keep_path=self.keep_path)
        found = support > 0
        if not bool(found.any()):
            raise ValueError(f"No point lies within bandwidth={bandwidth:g} of any seed; "
                             "raise the bandwidth or pass other seeds.")
        centers = _merge_modes(pos[found], support[found], bandwidth) + mean  # (K, D)
        idx, dist = _nearest(x, centers)
        if not self.cluster_all:
            idx = torch.where(dist <= bandwidth, idx, -1)
        self._centers = centers
        self._n_features = x.shape[1]
        self.bandwidth_ = float(bandwidth)
        self.cluster_centers_ = centers.cpu().numpy()
        self.labels_ = idx.cpu().numpy()
        self.n_iter_ = n_iter
        self.path_ = (torch.stack(path) + mean).cpu().numpy() if self.keep_path else None
        if not converged:
            warnings.warn(f"MeanShift: some seeds were still moving after max_iter="
                          f"{self.max_iter} steps; increase max_iter.",
                          ConvergenceWarning, stacklevel=stacklevel)

    def predict(self, x) -> np.ndarray:
        """Index of the nearest mode of each row of ``x``, shape (N,), int64."""
        if not hasattr(self, "_centers"):
            raise RuntimeError("This MeanShift instance is not fitted yet; call .fit(x) before "
                               ".predict(x).")
        x = as_data(x, name="x", device=self._centers.device, dtype=self._centers.dtype)
        check_n_features(x, self._n_features)
        return _nearest(x, self._centers)[0].cpu().numpy()

    def __repr__(self) -> str:
        return (f"MeanShift(bandwidth={self.bandwidth}, kernel={self.kernel!r}, "
                f"bin_seeding={self.bin_seeding}, cluster_all={self.cluster_all}, "
                f"max_iter={self.max_iter})")

    # -- persistence

    def save(self, path) -> None:
        """Write the settings and fitted state to ``path`` (``.npz`` + JSON header, no pickle).

        See :mod:`probmix.io.persistence`; read it back with ``MeanShift.load(path)``.
        """
        persistence.save(self, path)

    @classmethod
    def load(cls, path, *, device=None) -> "MeanShift":
        """Read a MeanShift written by :meth:`save` (nothing in the file is executed).

        ``device`` moves the fitted state (default: where it was saved).
        """
        return persistence.load_as(cls, path, device=device)

    @classmethod
    def _from_probmix_state(cls, fields: dict, context) -> "MeanShift":
        estimator = super()._from_probmix_state(fields, context)
        check_loaded_centres(estimator, n_centres=None, mean=False)
        return estimator
