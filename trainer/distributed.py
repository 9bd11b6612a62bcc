"""Data-parallel training with PyTorch's own engine (DistributedDataParallel under torchrun).

`torchrun --nproc_per_node=N -m trainer fit ...` starts N processes with RANK, LOCAL_RANK and
WORLD_SIZE set; `segtrain fit --devices N` launches exactly that. Each process trains on its
share of every epoch (DistributedSampler), gradients are averaged by DDP, validation metrics
are summed over all ranks before they are computed, and only rank 0 writes files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job; a single process is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistContext:
    """Join the process group torchrun describes in the environment (nccl on CUDA, else gloo)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world_size, local_rank)


def process_device(ctx: DistContext, device: str) -> str:
    """The device name of this process: its own GPU under DDP on CUDA, else `device`."""
    if ctx.enabled and torch.cuda.is_available() and device != "cpu":
        return f"cuda:{ctx.local_rank}"
    return device


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum over all ranks (the tensor itself when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(value, ctx: DistContext):
    """Rank 0's `value` on every rank."""
    if not ctx.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ... of a dataset: every sample on exactly one rank.

    Unlike DistributedSampler it never pads with repeated samples, so metrics summed over the
    ranks are exactly those of a single-process pass over the whole set.
    """

    def __init__(self, length: int, ctx: DistContext):
        self.indices = list(range(ctx.rank, length, ctx.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def launch(devices: int, argv: Sequence[str]) -> int:
    """Run `python -m torch.distributed.run --standalone --nproc_per_node=N -m trainer <argv>`."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={devices}",
        "-m",
        "trainer",
        *argv,
    ]
    return subprocess.call(command)
