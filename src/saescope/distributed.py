"""Process-group helpers for torchrun: who am I, which device is mine, wait for the others.

`torchrun --nproc_per_node N -m saescope <stage> …` sets RANK/WORLD_SIZE/LOCAL_RANK; a plain run is
rank 0 of 1 and never touches torch.distributed. NCCL on CUDA, gloo on CPU (which is how the
multi-process paths are tested without GPUs). This module knows nothing about the stages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: str = "auto") -> DistInfo:
    """Join the process group if launched by torchrun (idempotent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device != "cpu"
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local)


def is_main_process() -> bool:
    """Whether this process is rank 0 (also when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce (a no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(
            tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op]
        )
    return tensor


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
