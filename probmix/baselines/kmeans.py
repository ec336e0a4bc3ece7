"""KMeans: batched Lloyd iterations on tensors, seeded by greedy k-means++.

Two module-level functions do the numerical work and are what other engines
call (the MAP engine initialises EM from them):

* :func:`kmeans_plusplus` (:mod:`probmix.baselines.kmeans_init`) draws ``R`` independent
  k-means++ seedings at once;
* :func:`lloyd` (:mod:`probmix.baselines.lloyd`) runs Lloyd's algorithm from ``R`` sets of
  centres at once.

Both work on one ``(R, K, D)`` tensor of centres, so ``n_init`` restarts cost
one batched computation rather than ``n_init`` sequential ones. The
:class:`KMeans` estimator validates input, draws the initial centres, calls
:func:`lloyd` and keeps the restart with the lowest inertia.

The algorithm follows scikit-learn's ``KMeans(algorithm="lloyd")`` step for
step (same centring of the data, same empty-cluster relocation, same
convergence rule), so from the same initial centres both give the same
labels, centres and inertia. Sample weights act as counts: an integer weight
``w`` is the row repeated ``w`` times, a zero weight is the row dropped.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from probmix._random import generator
from probmix._validation import check_int, check_seed
from probmix.baselines import fused
from probmix.baselines.kmeans_init import _random_init, kmeans_plusplus
from probmix.baselines.kmeans_streaming import streamed_lloyd
from probmix.baselines.loaded import check_loaded_centres
from probmix.baselines.lloyd import (_assign, _centred_transpose, _check_centers, _check_tol,
                                     _fits_squares, _lloyd, _rows_per_block, first_argmin, lloyd)
from probmix.exceptions import ConvergenceWarning
from probmix.infer.distributed import reducer_for
from probmix.io import persistence
from probmix.io.data import as_data, as_sample_weight, check_n_features, check_squares_finite
from probmix.io.scan import scan
from probmix.io.sources import as_source, is_source

__all__ = ["KMeans", "kmeans_plusplus", "lloyd", "first_argmin"]


# ----------------------------------------------------------------------------- estimator


@persistence.register("KMeans")
class KMeans(persistence.AttributeState):
    """K-means clustering by batched Lloyd iterations.

    Parameters
    ----------
    n_clusters : int
        Number of clusters K (at least 1, at most the number of samples).
    init : {"k-means++", "random"} or array-like, shape (K, D) or (R, K, D)
        "k-means++": greedy k-means++ seeding; "random": K distinct rows drawn
        in proportion to their weight; an array: the initial centres themselves
        (one set per restart if 3-D).
    n_init : int or "auto", default "auto"
        Number of restarts, run together as one batch; the one with the lowest
        inertia is kept. "auto" is 1 for "k-means++" and an array, 10 for "random".
    max_iter : int, default 300
        Most Lloyd iterations per restart.
    tol : float, default 1e-4
        Relative tolerance: a restart stops when the squared centre shift is at
        most ``tol`` times the mean per-feature variance of the data.
    seed : int, optional
        Seed of the random initialisation; None draws a fresh one.
    device : str or torch.device, optional
        Where to compute; default the device of ``x`` (CPU for arrays).
    dtype : torch.float32 or torch.float64, optional
        Default float64 on the CPU, float32 on a GPU.

    Attributes
    ----------
    cluster_centers_ : ndarray, shape (K, D)
    labels_ : ndarray, shape (N,), int64
    inertia_ : float
        Weighted sum of squared distances of the points to their centre.
    n_iter_ : int
        Iterations run by the kept restart.
    converged_ : bool
        Whether the kept restart met the tolerance before ``max_iter``.

    Examples
    --------
    >>> km = KMeans(3, n_init=10, seed=0).fit(x)          # doctest: +SKIP
    >>> km.labels_, km.cluster_centers_, km.inertia_      # doctest: +SKIP
    """

    def __init__(self, n_clusters, *, init="k-means++", n_init="auto", max_iter=300, tol=1e-4,
                 seed=None, device=None, dtype=None):
        self.n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
        if isinstance(init, str):
            if init not in ("k-means++", "random"):
                raise ValueError(f"init must be 'k-means++', 'random' or an array of initial "
                                 f"centres; got {init!r}.")
        elif init is None:
            raise TypeError("init must be 'k-means++', 'random' or an array of initial centres "
                            "of shape (n_clusters, n_features); got None.")
        self.init = init
        if n_init != "auto":
            n_init = check_int(n_init, "n_init", minimum=1)
        self.n_init = n_init
        self.max_iter = check_int(max_iter, "max_iter", minimum=1)
        self.tol = _check_tol(tol)
        self.seed = check_seed(seed)
        self.device = device
        self.dtype = dtype

    # -- fitting

    def fit(self, x, sample_weight=None, *, chunk_size=None, distributed=False,
            init_size: int = 100_000):
        """Cluster ``x``.

        Parameters
        ----------
        x : array-like, shape (N, D), or a streaming source
            A memory-mapped array, a .npy path, an HDF5 dataset, a list of arrays or a
            callable returning an iterator (:func:`probmix.io.sources.as_source`) is read chunk
            by chunk; ``labels_`` is then not stored (use :meth:`predict` chunk by chunk).
        sample_weight : array-like, shape (N,), optional
            Non-negative weights acting as counts (in-memory, single-process fits).
        chunk_size : int, optional
            Stream ``x`` in chunks of this many rows.
        distributed : bool or process group
            This process holds one shard of the rows of a ``torch.distributed`` job; counts,
            sums and inertia are all-reduced and every process ends with the same centres.
        init_size : int
            Streamed and distributed fits seed on a uniform random sample of this many rows
            (over all processes; k-means++ or random seeding on it).

        Returns
        -------
        self
        """
        if chunk_size is not None or distributed or is_source(x):
            if sample_weight is not None:
                raise ValueError("sample_weight is supported for in-memory, single-process fits "
                                 "only; repeat rows instead.")
            self._fit_streamed(x, chunk_size=chunk_size, distributed=distributed,
                               init_size=init_size)
            return self
        self._fit(x, sample_weight, stacklevel=3)
        return self

    def _fit_streamed(self, x, *, chunk_size, distributed, init_size):
        reducer = reducer_for(distributed)
        shard = None  # the rows in memory, when they are, to store labels_
        if not is_source(x):
            x = shard = as_data(x, name="x", device=self.device, dtype=self.dtype)
        source = as_source(x, chunk_size=chunk_size or 65536, device=self.device,
                           dtype=self.dtype)
        k = self.n_clusters
        found = scan(source.chunks(), reducer=reducer, sample_size=max(init_size, k),
                     seed=self.seed)
        if found.n < k:
            raise ValueError(f"n_clusters={k} is larger than the number of rows ({found.n}); "
                             f"pass n_clusters <= {found.n} or more data.")
        sample = found.sample
        gen = generator(self.seed, sample.device)
        if isinstance(self.init, str):
            r = self.n_init if self.n_init != "auto" else (10 if self.init == "random" else 1)
            init = kmeans_plusplus(sample, k, n_init=r, generator=gen) \
                if self.init == "k-means++" else _random_init(sample, k, r, None, gen)
        else:
            init = _check_centers(self.init, sample, "init")
        # scikit-learn's rule: tol times the mean per-feature (biased) variance
        tol_abs = self.tol * float(torch.diagonal(found.cov).mean()) * (found.n - 1) / found.n
        centers, inertia, n_iter, converged = streamed_lloyd(
            source.chunks, init, mean=found.mean, tol_abs=tol_abs, max_iter=self.max_iter,
            reducer=reducer)
        best = int(inertia.argmin())
        self._mean = found.mean
        self._centers = centers[best] - found.mean
        self._n_features = sample.shape[1]
        self.cluster_centers_ = centers[best].cpu().numpy()
        self.inertia_ = float(inertia[best])
        self.n_iter_ = int(n_iter[best])
        self.converged_ = bool(converged[best])
        self.labels_ = None if shard is None else self.predict(shard)
        if not self.converged_:
            warnings.warn(f"KMeans did not converge in max_iter={self.max_iter} iterations "
                          f"(tol={self.tol}); increase max_iter or tol.",
                          ConvergenceWarning, stacklevel=3)

    def fit_predict(self, x, sample_weight=None) -> np.ndarray:
        """Cluster ``x`` and return ``labels_``, shape (N,)."""
        self._fit(x, sample_weight, stacklevel=3)
        return self.labels_

    def _fit(self, x, sample_weight, *, stacklevel: int):
        x = as_data(x, name="x", device=self.device, dtype=self.dtype)
        check_squares_finite(x, large=False)  # squared distances must not underflow
        n, d = x.shape
        k = self.n_clusters
        if k > n:
            raise ValueError(f"n_clusters={k} is larger than the number of samples in x ({n}); "
                             f"pass n_clusters <= {n} or more data.")
        w = as_sample_weight(sample_weight, n, device=x.device, dtype=x.dtype)
        gen = generator(self.seed, x.device)
        if isinstance(self.init, str):
            r = self.n_init if self.n_init != "auto" else (10 if self.init == "random" else 1)
            if self.init == "k-means++":
                init = kmeans_plusplus(x, k, n_init=r, sample_weight=w, generator=gen)
            else:
                init = _random_init(x, k, r, w, gen)
        else:
            init = _check_centers(self.init, x, "init")
            if init.shape[1] != k:
                raise ValueError(f"init has {init.shape[1]} centre(s) but n_clusters={k}; pass "
                                 f"an array with n_clusters={k} rows.")
            if self.n_init not in ("auto", 1, init.shape[0]):
                warnings.warn(f"init is an array of {init.shape[0]} set(s) of centres, so "
                              f"n_init={self.n_init} is ignored; {init.shape[0]} restart(s) "
                              "will run. Pass n_init=1 to silence this.",
                              RuntimeWarning, stacklevel=stacklevel)
        xt, mean = _centred_transpose(x, w)
        labels, centers, inertia, n_iter, converged = _lloyd(
            xt, w, init - mean, max_iter=self.max_iter, tol=self.tol)
        best = int(inertia.argmin())
        self._mean = mean
        self._centers = centers[best]  # (K, D) centred
        self._n_features = d
        self.cluster_centers_ = (centers[best] + mean).cpu().numpy()
        self.labels_ = labels[best].cpu().numpy()
        self.inertia_ = float(inertia[best])
        self.n_iter_ = int(n_iter[best])
        self.converged_ = bool(converged[best])
        if not self.converged_:
            warnings.warn(f"KMeans did not converge in max_iter={self.max_iter} iterations "
                          f"(tol={self.tol}); increase max_iter or tol.",
                          ConvergenceWarning, stacklevel=stacklevel)
        distinct = int(np.unique(self.labels_).size)
        if distinct < k:
            warnings.warn(f"Only {distinct} distinct cluster(s) found for n_clusters={k}, "
                          "probably because x holds duplicate points; use fewer clusters.",
                          ConvergenceWarning, stacklevel=stacklevel)

    # -- using a fit

    def _fitted_input(self, x, method: str) -> torch.Tensor:
        if not hasattr(self, "_centers"):
            raise RuntimeError(f"This KMeans instance is not fitted yet; call .fit(x) before "
                               f".{method}(x).")
        x = as_data(x, name="x", device=self._centers.device, dtype=self._centers.dtype)
        check_n_features(x, self._n_features)
        return x

    def predict(self, x) -> np.ndarray:
        """Index of the nearest centre of each row of ``x``, shape (N,), int64."""
        x = self._fitted_input(x, "predict")
        centers = self._centers.unsqueeze(0)  # (1, K, D)
        if fused.enabled(x) and _fits_squares(centers):
            return fused.assign((x - self._mean).contiguous(), None, centers)[0][0].numpy()
        xt = (x - self._mean).T.contiguous()  # (D, N)
        n = xt.shape[1]
        step = _rows_per_block(n, self.n_clusters)
        out = [_assign(xt, centers, s, min(n, s + step))[0] for s in range(0, n, step)]
        return torch.cat(out).cpu().numpy()

    def transform(self, x) -> np.ndarray:
        """Euclidean distance of each row of ``x`` to each centre, shape (N, K)."""
        x = self._fitted_input(x, "transform") - self._mean
        step = _rows_per_block(x.shape[0], self.n_clusters * x.shape[1])
        out = [torch.cdist(x[s:s + step], self._centers,
                           compute_mode="donot_use_mm_for_euclid_dist")
               for s in range(0, x.shape[0], step)]
        return torch.cat(out).cpu().numpy()

    def __repr__(self) -> str:
        init = self.init if isinstance(self.init, str) else "array"
        return (f"KMeans(n_clusters={self.n_clusters}, init={init!r}, n_init={self.n_init!r}, "
                f"max_iter={self.max_iter}, tol={self.tol}, seed={self.seed})")

    # -- persistence

    def save(self, path) -> None:
        """Write the settings and fitted state to ``path`` (``.npz`` + JSON header, no pickle).

        See :mod:`probmix.io.persistence`; read it back with ``KMeans.load(path)``.
        """
        persistence.save(self, path)

    @classmethod
    def load(cls, path, *, device=None) -> "KMeans":
        """Read a KMeans written by :meth:`save` (nothing in the file is executed).

        ``device`` moves the fitted state (default: where it was saved).
        """
        return persistence.load_as(cls, path, device=device)

    @classmethod
    def _from_probmix_state(cls, fields: dict, context) -> "KMeans":
        estimator = super()._from_probmix_state(fields, context)
        check_loaded_centres(estimator, n_centres=estimator.n_clusters, mean=True)
        return estimator
