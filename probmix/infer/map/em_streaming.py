"""EM over data that is not in memory: chunks streamed from a source, or shards on processes.

:class:`StreamedData` has the interface of :class:`~probmix.infer.map.em_steps.PreparedData`
(``chunks()``, ``shift``, ``scale``, ``total_weight``, ``reducer``...), so the one
E-step :func:`~probmix.infer.map.em_steps.e_step` and the one M-step serve the
in-memory, streaming and distributed fits alike: each pass streams the chunks,
sums their sufficient statistics and all-reduces the sums (exact EM).

:func:`~probmix.io.scan.scan` is the pass before EM: the data's mean, covariance and scale (for
the standardisation and the data-scaled default prior) and a uniform random
sample of rows without replacement (for the initialisation), in one pass.
"""

from __future__ import annotations

import math

from probmix.model.covariance import CovarianceFamily
from probmix.infer.distributed import LocalReducer
from probmix.infer.map import em_steps
from probmix.io.scan import Scan, scan  # the pass before EM (shared with KMeans)

__all__ = ["Scan", "StreamedData", "scan"]


class StreamedData:
    """The rows of a :class:`~probmix.io.sources.DataSource`, standardised, served in chunks.

    Φ(x') is recomputed for each chunk at each pass (nothing but one chunk is held).

    Parameters
    ----------
    source : DataSource
    family : CovarianceFamily
    shift : Tensor (D,), scale : float
        The standardisation x' = (x - shift) / scale (from :func:`scan`).
    n_total : int
        Rows over all processes.
    reducer : LocalReducer or ProcessGroupReducer
    """

    sample_weight = None

    def __init__(self, source, family: CovarianceFamily, *, shift, scale: float, n_total: int,
                 reducer=None):
        self.source, self.family = source, family
        self.shift, self.scale = shift, float(scale)
        self.reducer = LocalReducer() if reducer is None else reducer
        self.d = int(shift.shape[0])
        self.n_total = int(n_total)
        self.total_weight = float(n_total)
        self.n_phi = 1 + self.d + family.n_quadratic(self.d)
        self.piece = em_steps.chunk_rows(shift.element_size(), self.n_phi)

    def chunks(self):
        """Yield (rows, Φ chunk (F, n), None) for this process's rows, in order."""
        start = 0
        for x in self.source.chunks():
            xt = ((x - self.shift) / self.scale).T.contiguous()
            # cache-sized pieces, as in memory: Φ and the (K, n) block stay in cache
            for lo in range(0, xt.shape[1], self.piece):
                hi = min(lo + self.piece, xt.shape[1])
                yield slice(start + lo, start + hi), self.family.features(xt[:, lo:hi]), None
            start += xt.shape[1]

    def log_jacobian(self) -> float:
        """log-likelihood(x) - log-likelihood(x'): -N · D · log(scale)."""
        return -self.total_weight * self.d * math.log(self.scale)
