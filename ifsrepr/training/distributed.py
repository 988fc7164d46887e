"""Data-parallel training with ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc-per-node N -m ifsrepr train survey.h5 -o model/`` starts N
processes; each sees ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in its
environment, trains on its share of each epoch's galaxies
(`~torch.utils.data.DistributedSampler`), and averages gradients with the
others (`~torch.nn.parallel.DistributedDataParallel`). The backend is NCCL on
GPUs and gloo on CPUs. Only rank 0 writes checkpoints, metrics and the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "setup_distributed"]


@dataclass
class DistributedContext:
    """Where this process stands in a (possibly one-process) training run.

    Examples
    --------
    The context of a plain single-process run, where the collective
    operations do nothing:

    >>> import torch
    >>> from ifsrepr.training import DistributedContext
    >>> context = DistributedContext()
    >>> context.enabled, context.is_main
    (False, True)
    >>> context.all_reduce_sum(torch.tensor([1.0, 2.0]))
    tensor([1., 2.])

    Rank 2 of four processes does not write files:

    >>> DistributedContext(rank=2, local_rank=0, world_size=4).is_main
    False
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    started_here: bool = False

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints progress."""
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes (a no-op for one process)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        """Wait for every process."""
        if self.enabled:
            dist.barrier()

    def shutdown(self) -> None:
        """Leave the process group if this context started it."""
        if self.started_here and dist.is_initialized():
            dist.destroy_process_group()


def setup_distributed(device: torch.device) -> DistributedContext:
    """Join the process group ``torchrun`` describes in the environment, if any.

    Parameters
    ----------
    device : torch.device
        Picks the backend: NCCL for CUDA, gloo otherwise.

    Returns
    -------
    DistributedContext
        A one-process context when not launched by ``torchrun``.

    Examples
    --------
    Outside ``torchrun`` (no ``WORLD_SIZE`` above 1) there is nothing to join:

    >>> import os
    >>> from unittest import mock
    >>> import torch
    >>> from ifsrepr.training import setup_distributed
    >>> with mock.patch.dict(os.environ, {"WORLD_SIZE": "1"}):
    ...     context = setup_distributed(torch.device("cpu"))
    >>> context
    DistributedContext(rank=0, local_rank=0, world_size=1, started_here=False)
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    started = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        started = True
    return DistributedContext(rank, local_rank, world_size, started)
