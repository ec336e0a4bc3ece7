"""The E-step and M-step of EM for the Gaussian mixture, as pure functions.

The E-step of a chunk of rows returns *sufficient statistics* (weighted counts,
sums and quadratic moments per component, plus the log-likelihood); the M-step
maps summed statistics to parameters. Streaming, mini-batch and distributed EM
only change where the chunks come from and how the statistics are summed.

Everything is batched over R parameter sets (EM restarts): parameters carry a
leading (R,) dimension and one matrix product serves all restarts at once.

Data are worked on in standardised coordinates x' = (x - shift) / scale (one
scalar scale), which keeps the moment expansion ‖x‖² - 2x·μ + ‖μ‖² accurate
and the squares far from overflow; :class:`PreparedData` does the mapping.
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import torch

from probmix.infer.distributed import LocalReducer
from probmix.infer.standardize import standardisation
from probmix.model.covariance import CovarianceFamily
# the weights' posterior mode and the sticks' map, re-exported from their home
from probmix.model.weights import posterior_mode as weights_from_counts
from probmix.model.weights import sticks_from_weights

__all__ = ["chunk_rows", "PreparedData", "Stats", "e_step", "m_step", "natural_weights", "log_joint",
           "stats_from_responsibilities", "weights_from_counts"]

_CHUNK_BYTES = 2**20          # Φ chunk of about 1 MiB: stays in cache between the two products
_MIN_CHUNK, _MAX_CHUNK = 2048, 16384  # below 2048 rows the products run ~30% slower
_MAX_CHUNK_BYTES = 64 * 2**20  # but never a Φ chunk above 64 MiB (wide data: Φ is ~D²/2 rows)
_EXP_FLOOR = {torch.float64: -700.0, torch.float32: -80.0}  # exp(floor) is still a normal number
_CACHE_BYTES = 4 * 2**30      # keep Φ(x) across iterations when it is at most this big
_CACHE_RATIO = 256            # ... and at most this many times x (wide data: Φ is ~D/2 times x)


def chunk_rows(itemsize: int, n_phi: int) -> int:
    """Rows per E-step chunk: Φ of about 1 MiB, within [2048, 16384] rows, and at most 64 MiB
    (at least one row): for D in the thousands Φ has millions of rows per point, and 2048 points
    of it would take gigabytes."""
    per_row = itemsize * n_phi
    floor = max(1, min(_MIN_CHUNK, _MAX_CHUNK_BYTES // per_row))
    return int(min(_MAX_CHUNK, max(floor, _CHUNK_BYTES // per_row)))


class PreparedData:
    """Rows of data in standardised coordinates, with their features Φ(x'), served in chunks.

    Everything is stored feature-major: ``xt`` (D, N) and Φ (F, N), so chunks are column
    ranges and every product and reduction runs contiguously along the data axis.

    Parameters
    ----------
    x : Tensor (N, D)
    family : CovarianceFamily
    sample_weight : Tensor (N,), optional
    shift : Tensor (D,), optional
        Defaults to the (weighted) mean of ``x``.
    scale : float, optional
        Defaults to the root mean per-feature variance (1 for constant data).
    cache_bytes : int
        Keep Φ for all rows when it fits in this many bytes (default 4 GiB) and in 256 times
        the bytes of ``x`` (D up to about 500); else compute it per chunk at every pass.
    """

    def __init__(self, x, family: CovarianceFamily, *, sample_weight=None, shift=None,
                 scale=None, cache_bytes: int = _CACHE_BYTES, reducer=None):
        self.family = family
        self.sample_weight = sample_weight
        self.reducer = LocalReducer() if reducer is None else reducer
        if shift is None or scale is None:
            shift, scale = standardisation(x, sample_weight=sample_weight, reducer=self.reducer,
                                           shift=shift, scale=scale)
        self.shift, self.scale = shift, float(scale)
        self.x = (x - shift) / self.scale  # (N, D)
        self.xt = self.x.T.contiguous()  # (D, N)
        self.n, self.d = x.shape
        local = x.new_tensor([float(self.n),
                              float(self.n) if sample_weight is None else sample_weight.sum()])
        self.reducer.sum_(local)
        self.n_total, self.total_weight = int(local[0]), float(local[1])
        self.n_phi = 1 + self.d + family.n_quadratic(self.d)
        itemsize = self.x.element_size()
        self.chunk = chunk_rows(itemsize, self.n_phi)
        phi_bytes = itemsize * self.n * self.n_phi
        cached = phi_bytes <= min(cache_bytes, _CACHE_RATIO * itemsize * x.numel())
        # cached as one contiguous (F, n) block per chunk: no strided reads across a huge array
        self.blocks = [family.features(self.xt[:, rows]) for rows in self.row_chunks()] \
            if cached else None

    def row_chunks(self) -> Iterator[slice]:
        """The row ranges of the chunks, in order."""
        for start in range(0, self.n, self.chunk):
            yield slice(start, min(start + self.chunk, self.n))

    def chunks(self) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor | None]]:
        """Yield (rows, Φ chunk (F, n), weights chunk (n,) or None)."""
        for i, rows in enumerate(self.row_chunks()):
            phi = self.blocks[i] if self.blocks is not None else self.family.features(self.xt[:, rows])
            yield rows, phi, None if self.sample_weight is None else self.sample_weight[rows]

    def log_jacobian(self) -> float:
        """log-likelihood(x) - log-likelihood(x'): -W · D · log(scale)."""
        return -self.total_weight * self.d * math.log(self.scale)


class Stats(NamedTuple):
    """Sufficient statistics summed over rows, for R parameter sets and K components.

    s : (R, K, F) Σ_n resp · Φ: s[..., 0] are counts, s[..., 1:1+D] sums, the rest quadratic moments.
    log_lik : (R,) weighted log-likelihood of the rows (standardised coordinates).
    """

    s: torch.Tensor
    log_lik: torch.Tensor


def natural_weights(family: CovarianceFamily, weights, means, prec_chol) -> torch.Tensor:
    """(R, K, F) such that log π_k + log N(x | μ_k, Λ_k) = W_k · Φ(x) (the family's weights)."""
    return family.natural_weights(means, prec_chol, log_weights=torch.log(weights))


def e_step(data: PreparedData, w: torch.Tensor) -> Stats:
    """Responsibilities and their sufficient statistics, chunk by chunk.

    Parameters
    ----------
    data : PreparedData
    w : Tensor (R, K, F)
        From :func:`natural_weights`.

    Returns
    -------
    Stats
    """
    r, k, f = w.shape
    w_flat = w.reshape(r * k, f)  # (R·K, F)
    floor = _EXP_FLOOR[w.dtype]
    s = w.new_zeros(r * k, f)
    log_lik = w.new_zeros(r)
    for _, phi, sw in data.chunks():
        logp = torch.mm(w_flat, phi).view(r, k, -1)  # (R, K, n)
        top = logp.amax(1, keepdim=True)  # (R, 1, n)
        # exp of arguments below the underflow threshold is ~7x slower and yields subnormals
        # that slow the next product; clamping changes a responsibility by < exp(floor)
        resp = logp.sub_(top).clamp_(min=floor).exp_()  # unnormalised, in place
        total = resp.sum(1, keepdim=True)  # (R, 1, n)
        resp.div_(total)
        lse = top.add_(total.log_()).squeeze(1)  # (R, n): log p(x_n)
        if sw is None:
            log_lik += lse.sum(1)
        else:
            log_lik += lse @ sw
            resp.mul_(sw)
        s.addmm_(resp.view(r * k, -1), phi.T)  # (R·K, F)
    data.reducer.sum_(s)
    data.reducer.sum_(log_lik)
    return Stats(s.view(r, k, f), log_lik)


def stats_from_responsibilities(data: PreparedData, resp_of_rows) -> torch.Tensor:
    """Σ_n resp · Φ for given responsibilities, chunk by chunk.

    ``resp_of_rows(rows: slice) -> Tensor (R, K, n)`` gives the responsibilities of a chunk.
    Returns (R, K, F).
    """
    out = None
    for rows, phi, sw in data.chunks():
        resp = resp_of_rows(rows)
        if sw is not None:
            resp = resp * sw
        r, k = resp.shape[:2]
        contrib = resp.reshape(r * k, -1) @ phi.T
        out = contrib if out is None else out + contrib
    return data.reducer.sum_(out).view(r, k, -1)


def log_joint(data: PreparedData, w: torch.Tensor) -> torch.Tensor:
    """log π_k + log N(x'_n | k) for every row, shape (N, K), for one parameter set w (K, F)."""
    return torch.cat([(w @ phi).T for _, phi, _ in data.chunks()], 0)


def factorise(family: CovarianceFamily, cov: torch.Tensor):
    """Precision Cholesky factors of (R,)-batched native covariances, and ok (R,): all factorised."""
    prec_chol, ok = family.precision_cholesky(cov)
    return prec_chol, ok.reshape(ok.shape[0], -1).all(-1)


def m_step(family: CovarianceFamily, s: torch.Tensor, *, prior, reg_covar: float, start=None):
    """Closed-form MAP parameters from summed statistics (maximum likelihood when ``prior`` is None).

    Parameters
    ----------
    s : Tensor (R, K, F)
        Summed respᵀ Φ.
    prior : ResolvedPrior or None (in the standardised coordinates)
    reg_covar : float
        Ridge in the standardised coordinates.
    start : Tensor, native covariance shape, optional
        The current covariances: families whose M-step iterates start there (EM's previous
        step), which keeps EM monotone and the M-step short.

    Returns
    -------
    weights (R, K), means (R, K, D), cov (native), prec_chol (native), ok (R,) whether every
    covariance factorised, nk (R, K) the raw counts.
    """
    d = family.n_features_from_stats(s.shape[-1])
    nk_raw = s[..., 0]
    nk = nk_raw + 10 * torch.finfo(s.dtype).eps  # as scikit-learn: never divide by an empty count
    sx, sq = s[..., 1:1 + d], s[..., 1 + d:]
    means, cov = family.posterior_mode(nk, sx, sq, prior=prior, reg_covar=reg_covar, start=start)
    prec_chol, ok = factorise(family, cov)
    return weights_from_counts(nk, prior), means, cov, prec_chol, ok, nk_raw
