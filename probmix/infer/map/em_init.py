"""Initial parameters of closed-form EM: hierarchical, k-means, random, or given.

Every initialisation gives R restarts at once, each with its weights, means and covariances
in the standardised coordinates of the data (leading dimension R):

- ``"hc"``: the model-based hierarchical partition of :mod:`probmix.infer.map.hierarchical`
  (Ward's criterion, the EII tree; one tree serves every K), then one M-step;
- ``"mclust"``: mclust's own default start, one partition of the unconstrained VVV tree
  (:mod:`probmix.infer.map.hierarchical_vvv`; Ward's where that tree is not built: fewer
  than 10 rows per feature, or more than 20 features), so that EM from it follows mclust's
  ``Mclust(X)``;
- ``"k-means++"`` / ``"kmeans"``: responsibilities from the nearest k-means++ seed, or from
  Lloyd's iterations started there (``n_init`` restarts);
- ``"random"``: uniform random responsibilities; ``"random_from_data"``: means at random rows;
- ``"auto"`` (the default): the hierarchical starts of Ward's (EII) tree and of mclust's
  default VVV tree (:mod:`probmix.infer.map.hierarchical_vvv`) plus ``n_init`` k-means++
  starts (about half in the data's own scale, half on columns of unit variance), all
  batched, so EM keeps whichever reaches the best objective;
- a dict of parameters (optionally with a leading (R,) dimension), or a previous Fit;
- an integer array of labels (N,) or (R, N): hard partitions, one restart each (``select``
  passes the partitions of :data:`PARTITION_INITS`, computed once per K, to every family's
  fit).
"""

from __future__ import annotations

import numpy as np
import torch

from probmix._random import generator
from probmix.baselines.kmeans_init import kmeans_plusplus  # one k-means implementation
from probmix.baselines.lloyd import lloyd
from probmix.infer.map import em_steps
from probmix.infer.map.hierarchical import hierarchical_partitions
from probmix.model.gaussian_mixture import MixtureParams, as_params
from probmix.results.result import Fit

__all__ = ["INITS", "TREE_INITS", "PARTITION_INITS", "init_params", "initial_labels",
           "initial_partitions", "is_partition", "global_covariance", "distinct_rows"]

INITS = ("auto", "hc", "mclust", "kmeans", "k-means++", "random", "random_from_data")
#: the inits that start from a hierarchical tree (one tree per data set serves every K)
TREE_INITS = ("auto", "hc", "mclust")
#: the inits that start EM from hard partitions of the rows (which depend on the rows alone:
#: ``select`` computes them once per K and shares them between its fits)
PARTITION_INITS = (*TREE_INITS, "kmeans", "k-means++")
# "auto" adds the VVV tree's start where its full-covariance merges are informed (10 rows per
# feature: with 200 rows in 50-D it starts EM in a mode that spans both clusters) and cheap
# (its merges cost O(D³) each: 0.5 s for 400 rows in 13-D)
VVV_MIN_ROWS_PER_FEATURE, VVV_MAX_FEATURES = 10, 20


def _hard_responsibilities(labels: torch.Tensor, k: int, dtype):
    """labels (R, N) -> function of a row slice giving one-hot (R, K, n)."""
    def resp(rows):
        return torch.nn.functional.one_hot(labels[:, rows], k).to(dtype).transpose(1, 2)
    return resp


def _hierarchical_labels(data, k: int, seed: int, model: str = "EII") -> torch.Tensor:
    """The hierarchical partition into K clusters of the rows, shape (1, N).

    The tree (Ward's, ``model="EII"``, or the unconstrained model's, ``"VVV"``) is built on at
    most :data:`~probmix.infer.map.hierarchical.MAX_POINTS` (EII) or
    :data:`~probmix.infer.map.hierarchical_vvv.MAX_POINTS` (VVV) rows; beyond them each row
    joins the cluster whose mean is nearest (in standardised units).
    """
    x = data.x.detach().cpu().numpy()
    rows, labels = hierarchical_partitions(x, [k], rng=np.random.default_rng(seed), model=model)
    part = torch.as_tensor(labels[k], device=data.x.device)
    if rows.shape[0] == x.shape[0]:
        return part[None]
    sub = data.x[torch.as_tensor(rows, device=data.x.device)]
    centers = torch.stack([sub[part == j].mean(0) for j in range(int(part.max()) + 1)])
    return torch.cdist(data.x, centers).argmin(-1)[None]  # (1, N)


def initial_partitions(init, data, k, n_init, seed):
    """The hard partitions (R, N) of the rows that start EM for ``init`` in
    :data:`PARTITION_INITS` (None for "random"). They depend on the rows alone, not on the
    covariance family, so ``select`` computes them once per K and passes them to every
    family's fit as ``init`` (an integer array)."""
    x, device = data.x, data.x.device
    gen = generator(seed, device)
    if init in TREE_INITS and (k == 1 or data.n < 2):  # no tree to build: one cluster
        init = "k-means++"
    if init == "mclust":
        if vvv_tree_serves(data):
            labels = _hierarchical_labels(data, k, seed, model="VVV")  # (1, N)
            if int(labels.max()) + 1 == k:
                return labels
        init = "hc"  # as mclust where its tree cannot be built: Ward's (EII) tree
    if init in ("hc", "auto"):
        labels = _hierarchical_labels(data, k, seed)  # (1, N)
        if int(labels.max()) + 1 < k:  # ties or duplicate rows: fewer clusters than asked
            init = "k-means++"
        else:
            if init == "auto" and vvv_tree_serves(data):  # mclust's VVV tree's start too
                vvv = _hierarchical_labels(data, k, seed, model="VVV")
                if int(vvv.max()) + 1 == k and not bool((vvv == labels).all()):
                    labels = torch.cat([labels, vvv])
            if init == "auto":  # the trees' starts and n_init k-means++ starts, batched,
                # in two frames: the data's (one scale for all columns: a feature that
                # separates the clusters keeps its large spread) and columns of unit variance
                # (as the tree: starts that follow any rescaling of each feature)
                z = x / x.std(0).clamp_min(torch.finfo(x.dtype).tiny)  # (N, D)
                for frame, count in ((x, n_init - n_init // 2), (z, n_init // 2)):
                    if count:
                        centers = kmeans_plusplus(frame, k, n_init=count, generator=gen,
                                                  sample_weight=data.sample_weight)  # (r, K, D)
                        labels = torch.cat([labels, torch.cdist(frame, centers).argmin(-1)])
            return labels
    if init in ("k-means++", "kmeans"):
        centers = kmeans_plusplus(x, k, n_init=n_init, sample_weight=data.sample_weight,
                                  generator=gen)  # (R, K, D)
        if init == "kmeans":
            return lloyd(x, centers, sample_weight=data.sample_weight)[0]  # (R, N)
        return torch.cdist(x, centers).argmin(-1)  # (R, N)
    return None


def vvv_tree_serves(data) -> bool:
    """Whether the VVV tree's start is informed and cheap on these rows: at least
    VVV_MIN_ROWS_PER_FEATURE rows per feature and at most VVV_MAX_FEATURES features."""
    return VVV_MIN_ROWS_PER_FEATURE * data.d <= data.n and data.d <= VVV_MAX_FEATURES


def initial_labels(init, data, k, n_init, seed):
    """The hard partitions (R, N) that start EM for ``init`` (a string init that starts from
    partitions, or integer labels given), checked; None for the other inits (random
    responsibilities, means at random rows, given parameters)."""
    if is_partition(init):
        return _as_partitions(init, data, k)
    if isinstance(init, str) and init in PARTITION_INITS:
        return initial_partitions(init, data, k, n_init, seed)
    return None


def _initial_stats(init, data, k, n_init, seed, dtype):
    """Statistics of the initial responsibilities for the string initialisations."""
    labels = initial_partitions(init, data, k, n_init, seed)
    if labels is not None:
        return em_steps.stats_from_responsibilities(data, _hard_responsibilities(labels, k, dtype))
    # "random": uniform random responsibilities, normalised per row (as scikit-learn)
    gen = generator(seed, data.x.device)
    draws = torch.rand(n_init, k, data.n, generator=gen, device=data.x.device, dtype=dtype)
    draws /= draws.sum(1, keepdim=True)
    return em_steps.stats_from_responsibilities(data, lambda rows: draws[:, :, rows])


def _as_partitions(labels, data, k: int) -> torch.Tensor:
    """Integer labels (N,) or (R, N) given as ``init``, checked, as a long tensor (R, N)."""
    labels = torch.as_tensor(labels)
    if labels.ndim == 1:
        labels = labels[None]
    if labels.ndim != 2 or labels.shape[1] != data.n:
        raise ValueError(
            f"init as labels must have shape (N,) or (R, N) with N = {data.n} rows (one "
            f"partition per restart); got shape {tuple(labels.shape)}. Pass one component "
            "index per row of x.")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(
            f"init labels must lie in 0..{k - 1} for n_components={k}; got values from "
            f"{int(labels.min())} to {int(labels.max())}.")
    return labels.to(device=data.x.device, dtype=torch.long)


def _random_from_data(data, k, n_init, seed, reg):
    """Means at K distinct random rows (per restart); the global covariance; equal weights."""
    gen = generator(seed, data.x.device)
    ones = torch.ones(n_init, data.n, dtype=data.x.dtype, device=data.x.device)
    idx = torch.multinomial(ones, k, replacement=False, generator=gen)  # (R, K)
    cov = global_covariance(data, reg, k)
    weights = torch.full((n_init, k), 1.0 / k, dtype=data.x.dtype, device=data.x.device)
    return weights, data.x[idx], cov.expand(n_init, *cov.shape).contiguous()


def global_covariance(data, reg, k):
    """The whole data's covariance in the family's native shape for K components."""
    s = em_steps.stats_from_responsibilities(
        data, lambda rows: data.shift.new_ones(1, 1, rows.stop - rows.start))  # (1, 1, F)
    s = s.expand(1, k, s.shape[-1])
    return em_steps.m_step(data.family, s, prior=None, reg_covar=reg)[2][0]


def init_params(model, data, init, *, n_init, seed, prior_s, reg_s, warm_start):
    """Initial (weights, means, cov) in standardised coordinates, each with a leading (R,)."""
    family, k = model.family, model.n_components
    opts = dict(dtype=data.x.dtype, device=data.x.device)
    if warm_start is not None:
        same_model = (isinstance(warm_start, Fit)
                      and getattr(warm_start.model, "family", None) is family
                      and getattr(warm_start.model, "n_components", None) == k)
        if not same_model:
            raise ValueError("warm_start must be a Fit of a GaussianMixture with the same "
                             "n_components and covariance.")
        init = {key: warm_start.params[key] for key in ("weights", "means", "covariances")}
    if isinstance(init, (dict, MixtureParams)):
        p = as_params(init, family, n_components=k, n_features=data.d, **opts)
        batched = p.means.ndim == 3
        weights, means, cov = ((p.weights, p.means, p.covariances) if batched else
                               (p.weights[None], p.means[None], p.covariances[None]))
        return weights, (means - data.shift) / data.scale, cov / data.scale**2
    if is_partition(init):
        labels = _as_partitions(init, data, k)
        s = em_steps.stats_from_responsibilities(
            data, _hard_responsibilities(labels, k, data.x.dtype))
        return em_steps.m_step(family, s, prior=prior_s, reg_covar=reg_s)[:3]
    if init not in INITS:
        raise ValueError(
            f"init must be one of {INITS}, a dict of initial parameters or a Fit (warm_start); "
            f"got {init!r}."
        )
    if init == "random_from_data":
        return _random_from_data(data, k, n_init, seed, reg_s)
    s = _initial_stats(init, data, k, n_init, seed, data.x.dtype)
    weights, means, cov = em_steps.m_step(family, s, prior=prior_s, reg_covar=reg_s)[:3]
    return weights, means, cov


def is_partition(init) -> bool:
    """Whether ``init`` is an integer array of labels (a partition per restart)."""
    if isinstance(init, torch.Tensor):
        return not init.is_floating_point() and not init.is_complex() and init.dtype != torch.bool
    return isinstance(init, np.ndarray) and init.dtype.kind in "iu"


def distinct_rows(x: torch.Tensor, k: int) -> int | None:
    """The number of distinct rows of ``x`` when it is below ``k``, else None.

    The first rows nearly always settle it (a full ``unique`` of a million rows costs seconds).
    """
    head = torch.unique(x[:max(1024, 4 * k)], dim=0).shape[0]
    if head >= k:
        return None
    count = int(torch.unique(x, dim=0).shape[0])
    return count if count < k else None


