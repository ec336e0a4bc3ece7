"""Data-parallel fitting with ``torch.distributed``: sums of statistics across processes.

EM and k-means only need *sums* over rows (counts, sums, scatter matrices,
log-likelihoods), so a data-parallel fit is the single-process fit with each
sum all-reduced: every process holds a shard of the rows, computes its partial
sums, and after the all-reduce every process holds the same totals and takes the
same M-step, ending with identical parameters.

Usage (launched with ``torchrun --nproc_per_node=P script.py``)::

    import torch.distributed as dist
    dist.init_process_group("gloo")          # "nccl" for one GPU per process
    shard = load_my_rows(dist.get_rank(), dist.get_world_size())
    fit = probmix.fit(model, shard, engine="map", distributed=True, seed=0)

The engines call :func:`reducer_for` and never touch ``torch.distributed`` otherwise.
"""

from __future__ import annotations

import torch

__all__ = ["LocalReducer", "ProcessGroupReducer", "reducer_for"]


class LocalReducer:
    """The single-process reducer: every operation is the identity."""

    world_size = 1
    rank = 0
    distributed = False

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over processes, in place; returns it."""
        return tensor

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Stack ``tensor`` from every process: shape (world_size, *tensor.shape)."""
        return tensor[None]


class ProcessGroupReducer(LocalReducer):
    """Sums and gathers over a ``torch.distributed`` process group (gloo or NCCL)."""

    distributed = True

    def __init__(self, group=None):
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError(
                "distributed=True needs an initialised torch.distributed process group; call "
                "torch.distributed.init_process_group('gloo') (CPU) or ('nccl') (GPU) first, "
                "under torchrun. See docs/scaling.md."
            )
        self._dist, self.group = dist, group
        self.world_size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)

    def sum_(self, tensor):
        self._dist.all_reduce(tensor, op=self._dist.ReduceOp.SUM, group=self.group)
        return tensor

    def gather(self, tensor):
        tensor = tensor.contiguous()
        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        self._dist.all_gather(out, tensor, group=self.group)
        return torch.stack(out)


def reducer_for(distributed) -> LocalReducer:
    """The reducer for the ``distributed`` option: False, True (default group) or a group."""
    if distributed is False or distributed is None:
        return LocalReducer()
    if distributed is True:
        return ProcessGroupReducer()
    return ProcessGroupReducer(group=distributed)
