"""Data-parallel training across processes started by ``torchrun`` (one per GPU, or CPU workers).

The process group comes from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``): NCCL on CUDA, gloo on CPU. Without it training runs as a
single process and every function here is a no-op.

Gradients are averaged explicitly after each backward (``average_gradients``) instead of by
wrapping networks in ``DistributedDataParallel``: a GAN calls the discriminators in both the D
and the G step and freezes them in the G step, which DDP's reducer does not follow; one
flattened all-reduce per network per step is as cheap for networks of this size and keeps the
loop explicit (StyleGAN2-ADA does the same).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    """Where this process stands: ``rank`` of ``world_size``, on ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: str | None = None) -> Dist:
    """Join torchrun's process group if there is one; pick the device (CUDA if present).

    Args:
        device: ``"cpu"`` or ``"cuda"`` to force one; ``None`` picks CUDA when available.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_module(module: nn.Module) -> None:
    """Copy process 0's parameters and buffers to every process."""
    if not dist.is_initialized():
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=0)


def broadcast_buffers(module: nn.Module) -> None:
    """Copy process 0's buffers (batch-norm statistics) to every process, as DDP does per step."""
    if not dist.is_initialized():
        return
    for t in module.buffers():
        dist.broadcast(t.data, src=0)


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of ``module`` over all processes (one flattened all-reduce)."""
    if not dist.is_initialized():
        return
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def mean_over_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each scalar over all processes (for logging)."""
    if not dist.is_initialized() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
