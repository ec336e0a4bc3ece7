"""What EM iterates over: the prepared rows (in memory, streamed or sharded), the rows it
initialises on, the resolved prior, and the ridge in standardised units."""

from __future__ import annotations

import os
import warnings

import torch

from probmix.infer.distributed import reducer_for
from probmix.infer.map import em_steps
from probmix.infer.map.em_init import TREE_INITS
from probmix.infer.map.em_streaming import StreamedData
from probmix.io.data import as_data, as_sample_weight
from probmix.io.scan import scan
from probmix.io.sources import as_source, is_source

__all__ = ["prepare", "ridge", "feature_variances", "auto_restarts", "check_memory",
           "AUTO_RESTARTS", "AUTO_RESTARTS_ROWS"]

AUTO_RESTARTS, AUTO_RESTARTS_ROWS = 5, 20_000  # init="auto"'s k-means++ starts, and up to what N
AUTO_RESTARTS_BYTES = 64 * 2**20  # ... while the batched statistics (R, K, F) stay within this
# Peak memory of an EM iteration, in units of the batched statistics (R, K, F): measured
# 50x for full covariances at D = 1,500 (parameters, their factors, the prior's densities)
_EM_WORKING_COPIES = 48


def auto_restarts(init, n: int, k: int, n_phi: int, itemsize: int) -> int:
    """The default n_init: AUTO_RESTARTS starts for init="auto" on up to AUTO_RESTARTS_ROWS
    rows, fewer when their batched statistics (R, K, F) would pass AUTO_RESTARTS_BYTES (wide
    data: F grows as D²/2, and every restart carries several (K, D, D) arrays), else 1."""
    if not isinstance(init, str) or init != "auto" or n > AUTO_RESTARTS_ROWS:
        return 1
    return max(1, min(AUTO_RESTARTS, AUTO_RESTARTS_BYTES // (k * n_phi * itemsize)))


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(x, model, *, init, n_init, dtype) -> None:
    """Refuse, before any allocation, an in-memory fit whose EM arrays would not fit in this
    machine's memory (wide data with full or tied covariances: each component holds D²
    numbers). Streaming sources are not sized here."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2 or is_source(x):
        return
    n, d = int(shape[0]), int(shape[1])
    k, family = model.n_components, model.family
    n_phi = 1 + d + family.n_quadratic(d)
    itemsize = 4 if dtype in (torch.float32, "float32") else 8
    restarts = (auto_restarts(init, n, k, n_phi, itemsize) if n_init is None else n_init) \
        + (isinstance(init, str) and init in TREE_INITS)
    need = _EM_WORKING_COPIES * restarts * k * n_phi * itemsize
    have = _physical_memory()
    if have is None or need <= have:
        return
    raise MemoryError(
        f"covariance={family.name!r} on {d} features needs about {need / 2**30:.0f} GiB for "
        f"EM's arrays ({k} components x {restarts} restart(s) x {n_phi:,} statistics), "
        f"more than this machine's {have / 2**30:.0f} GiB. Use covariance='diag' or "
        "'spherical', or fewer columns (--columns).")


def ridge(reg_covar: float, relative: bool, variances: torch.Tensor, scale: float):
    """The ridge in standardised units: per feature (D,) when relative, else a float."""
    if relative:
        if reg_covar >= 1.0:
            warnings.warn(
                f"reg_covar={reg_covar:g} adds at least each feature's variance to every "
                "covariance: the ridge swamps them and the components cannot separate. "
                "reg_covar is a fraction of each feature's variance; pass a smaller one "
                "(the default is 1e-6).", UserWarning, stacklevel=4)
        return reg_covar * variances / scale**2  # (D,)
    reg_s = reg_covar / scale**2
    if reg_s >= 1.0 and scale != 1.0:  # scale is 1 for constant data: nothing to swamp
        warnings.warn(
            f"reg_covar={reg_covar:g} is at least the variance of x (mean per-feature variance "
            f"{scale**2:.3g}): the ridge swamps every covariance and the components "
            "cannot separate. With reg_covar_relative=False reg_covar is in the units of x "
            f"squared; pass a smaller one, e.g. reg_covar={1e-6 * scale**2:.3g}, or rescale x.",
            UserWarning, stacklevel=4,
        )
    return reg_s


def feature_variances(cov: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-feature variances (D,) from a covariance; a constant feature gets the mean of the
    others (scale² when all are constant), so that its ridge stays positive."""
    var = torch.diagonal(cov).clone()
    positive = var > 0
    fill = var[positive].mean() if bool(positive.any()) else var.new_tensor(scale**2)
    return torch.where(positive, var, fill)


def prepare(model, x, *, sample_weight, chunk_size, init_size, distributed, seed, device,
             dtype):
    """(data, sample, prior, variances): the rows EM iterates over, the rows it initialises
    on, the prior, and the per-feature variances (D,) of the data (original units; divided
    by N, the same in memory, streamed and sharded).

    In memory on one process the sample is the data itself; a streamed or distributed fit
    scans the rows once first for their moments (standardisation, data-scaled prior) and a
    uniform random sample of ``init_size`` rows (the same on every process).
    """
    k, family = model.n_components, model.family
    reducer = reducer_for(distributed)
    if chunk_size is not None or is_source(x):
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported with a streaming source; repeat "
                             "rows or fit in memory.")
        source = as_source(x, chunk_size=65536 if chunk_size is None else chunk_size,
                           device=device, dtype=dtype)
        found = scan(source.chunks(), reducer=reducer, sample_size=init_size, seed=seed)
        if found.n < k:
            raise ValueError(f"the data source holds {found.n} rows, fewer than "
                             f"n_components={k}; use fewer components or more data.")
        data = StreamedData(source, family, shift=found.mean, scale=found.scale,
                            n_total=found.n, reducer=reducer)
        prior = model.resolve_prior(moments=(found.mean, found.cov))
        sample = em_steps.PreparedData(found.sample, family, shift=data.shift, scale=data.scale)
        return data, sample, prior, feature_variances(found.cov * ((found.n - 1) / found.n), found.scale)
    x = as_data(x, device=device, dtype=dtype, min_samples=1 if reducer.distributed else k)
    sw = as_sample_weight(sample_weight, x.shape[0], device=x.device, dtype=x.dtype)
    if not reducer.distributed:
        data = em_steps.PreparedData(x, family, sample_weight=sw)
        w = torch.ones(x.shape[0], dtype=x.dtype, device=x.device) if sw is None else sw
        xs = data.x  # standardised: the variances of x are these times scale²
        var_s = (w @ (xs - (w @ xs) / w.sum()) ** 2) / w.sum()  # (D,)
        variances = feature_variances(torch.diag(var_s * data.scale**2), data.scale)
        return data, data, model.resolve_prior(x, sample_weight=sw), variances
    if sw is not None:
        raise ValueError("sample_weight is not supported with distributed=True yet; repeat rows "
                         "or fit on one process.")
    found = scan([x], reducer=reducer, sample_size=init_size, seed=seed)
    if found.n < k:
        raise ValueError(f"the shards hold {found.n} rows in all, fewer than n_components={k}.")
    data = em_steps.PreparedData(x, family, shift=found.mean, scale=found.scale, reducer=reducer)
    sample = em_steps.PreparedData(found.sample, family, shift=data.shift, scale=data.scale)
    return (data, sample, model.resolve_prior(moments=(found.mean, found.cov)),
            feature_variances(found.cov * ((found.n - 1) / found.n), found.scale))
