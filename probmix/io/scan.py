"""One pass over streamed rows: moments and a uniform random sample (before EM or k-means).

:func:`scan` gives the data's mean, covariance and scale (for the standardisation and the
data-scaled default prior) and a uniform random sample of rows without replacement (for the
initialisation), in one pass over the chunks of every process. Streaming EM and streaming
k-means both start with it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from probmix._random import torch_seed
from probmix.infer.distributed import LocalReducer
from probmix.infer.standardize import scale_from_variance

__all__ = ["Scan", "scan"]


class Scan(NamedTuple):
    """What one pass over all rows (of all processes) tells: moments and a random sample.

    n : int, mean : (D,), cov : (D, D) unbiased covariance, scale : float (root mean
    per-feature variance, 1 for constant data), sample : (min(n, size), D) uniform rows.
    """

    n: int
    mean: torch.Tensor
    cov: torch.Tensor
    scale: float
    sample: torch.Tensor


def _merge(a, b):
    """Chan et al.'s pairwise merge of (count, mean (D,), scatter about the mean (D, D))."""
    na, ma, sa = a
    nb, mb, sb = b
    n = na + nb
    delta = mb - ma
    mean = ma + delta * (nb / n)
    return n, mean, sa + sb + torch.outer(delta, delta) * (na * nb / n)


class _BottomK:
    """A uniform sample without replacement: the rows with the ``size`` smallest random keys."""

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.gen = size, generator
        self.keys, self.rows = None, None

    def add(self, x: torch.Tensor) -> None:
        keys = torch.rand(x.shape[0], generator=self.gen, dtype=torch.float64,
                          device=self.gen.device).to(x.device)
        if self.keys is not None and self.keys.shape[0] == self.size:
            keep = keys < self.keys.max()  # only keys below the current cut can enter
            keys, x = keys[keep], x[keep]
        if self.keys is not None:
            keys, x = torch.cat([self.keys, keys]), torch.cat([self.rows, x])
        if keys.shape[0] > self.size:  # keep the `size` smallest keys (linear-time select)
            keep = keys <= torch.kthvalue(keys, self.size).values  # keys are a.s. distinct
            keys, x = keys[keep], x[keep]
        self.keys, self.rows = keys, x

    def result(self, reducer, d: int, like: torch.Tensor) -> torch.Tensor:
        """The sample over all processes (identical on every process), in key order."""
        keys = self.keys if self.keys is not None else like.new_zeros(0, dtype=torch.float64)
        rows = self.rows if self.rows is not None else like.new_zeros(0, d)
        if reducer.distributed:  # pad to a common shape, gather, keep the global bottom-k
            pad = self.size - keys.shape[0]
            keys = torch.cat([keys, keys.new_full((pad,), math.inf)])
            rows = torch.cat([rows, rows.new_zeros(pad, d)])
            keys, rows = reducer.gather(keys).reshape(-1), reducer.gather(rows).reshape(-1, d)
        order = torch.argsort(keys)[:self.size]
        order = order[torch.isfinite(keys[order])]
        return rows[order]


def _generator(seed: int | None, rank: int) -> torch.Generator:
    """A CPU generator per process (None: fresh entropy; the gathered sample is still common)."""
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(torch_seed(int(seed) * 7919 + rank))
    return gen


def scan(chunks, *, reducer=None, sample_size: int, seed: int) -> Scan:
    """Moments and a uniform sample of ``sample_size`` rows in one pass over ``chunks``.

    Parameters
    ----------
    chunks : iterable of Tensor (n_i, D)
        This process's rows.
    reducer : LocalReducer or ProcessGroupReducer
    sample_size : int
    seed : int or None
        Seed of the sample (each process draws its own keys from seed and its rank).
    """
    reducer = LocalReducer() if reducer is None else reducer
    sampler = _BottomK(sample_size, _generator(seed, reducer.rank))
    acc, like = None, None
    for x in chunks:
        like = x
        m = x.mean(0)
        xc = x - m
        part = (float(x.shape[0]), m, xc.T @ xc)
        acc = part if acc is None else _merge(acc, part)
        sampler.add(x)
    if like is None:
        raise ValueError("the data source gave no rows; pass a source with at least one row.")
    d = like.shape[1]
    n_local, mean_local, scatter_local = acc
    if reducer.distributed:  # merge the per-process moments exactly, in rank order
        counts = reducer.gather(like.new_tensor([n_local]))[:, 0]
        means, scatters = reducer.gather(mean_local), reducer.gather(scatter_local)
        acc = (float(counts[0]), means[0], scatters[0])
        for i in range(1, counts.shape[0]):
            if float(counts[i]) > 0:
                acc = _merge(acc, (float(counts[i]), means[i], scatters[i]))
    n, mean, scatter = acc
    scale = scale_from_variance(float(torch.diagonal(scatter).sum()) / (n * d))
    cov = scatter / max(n - 1.0, 1.0)
    return Scan(int(round(n)), mean, cov, scale, sampler.result(reducer, d, like))

