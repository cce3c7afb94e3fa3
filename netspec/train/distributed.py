"""DistributedDataParallel through torchrun: who am I, and sums across ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def setup(device_kind: str) -> World:
    """Join the process group torchrun set up (env RANK/WORLD_SIZE); one process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def finish(world: World) -> None:
    """Wait for every rank after a run that ended well, so that none tears the group down while another
    is still in it (a gloo rank once aborted at exit under a loaded machine; not reproduced since)."""
    if world.distributed and dist.is_initialized():
        dist.barrier()


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def sum_all(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum a tensor over ranks (in place) and return it."""
    if world.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, world: World, device) -> bool:
    """True when any rank says so: all ranks stop at the same step."""
    if not world.distributed:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
