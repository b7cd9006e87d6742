"""DistributedDataParallel helpers: process-group setup from `torchrun`'s environment, rank queries, reductions.

A process is part of a distributed run when `torchrun` (or `python -m torch.distributed.run`) started it, i.e. the
environment has WORLD_SIZE > 1, RANK and MASTER_ADDR/MASTER_PORT. Every helper also works in a plain single
process: rank 0 of a world of size 1, where reductions and barriers do nothing.
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.distributed as dist


def launched_distributed() -> bool:
    """True when the environment says this process is one of several ranks (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    """This process's rank on its machine (LOCAL_RANK from torchrun; 0 when not distributed)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() or launched_distributed() else 0


def world_size() -> int:
    """Number of ranks (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, the only rank that writes files or prints progress."""
    return rank() == 0


def backend_for(device: torch.device | str) -> str:
    """'nccl' for CUDA devices, 'gloo' otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device: torch.device | str = "cpu") -> bool:
    """Join the process group torchrun described in the environment; returns True if this call created it.

    Does nothing (False) in a single process or when a group already exists. On CUDA each rank takes the GPU
    numbered by its LOCAL_RANK.
    """
    if not launched_distributed() or not dist.is_available() or dist.is_initialized():
        return False
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend_for(device))
    return True


def shutdown(created: bool) -> None:
    """Destroy the process group if `init_from_env` created it (pass its return value)."""
    if created and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks of a tensor (returned; the input is reduced in place). Identity in one process."""
    if is_distributed():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_buffers(module: torch.nn.Module, source: int = 0) -> None:
    """Copy every buffer (BatchNorm running statistics and counters) from rank `source` to all ranks.

    DDP already broadcasts rank 0's buffers at the start of every forward, but each rank's last forward of an
    epoch then updates its own running statistics; this call makes them identical before evaluation and saving.
    """
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=source)


def shard_indices(order: torch.Tensor, shard: int | None = None, shards: int | None = None) -> torch.Tensor:
    """This rank's equal-sized slice of a permutation that every rank computed identically.

    The first `len(order) // shards * shards` entries are split into `shards` contiguous blocks; the remainder
    (fewer than `shards` samples, different ones every epoch as the permutation changes) is dropped so that every
    rank takes the same number of steps. With one shard the whole order is returned unchanged.
    """
    shard = rank() if shard is None else shard
    shards = world_size() if shards is None else shards
    if shards == 1:
        return order
    per_shard = len(order) // shards
    return order[shard * per_shard : (shard + 1) * per_shard]


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 (16 hex digits) of a module's state dict (parameters and buffers, in key order), from CPU bytes."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def all_gather_strings(text: str) -> list[str]:
    """Every rank's string, in rank order ([text] when not distributed)."""
    if not is_distributed():
        return [text]
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, text)
    return [str(item) for item in gathered]


__all__ = [
    "launched_distributed", "is_distributed", "rank", "local_rank", "world_size", "is_main_process", "backend_for",
    "init_from_env", "shutdown", "barrier", "all_reduce_sum", "broadcast_buffers", "shard_indices", "state_digest",
    "all_gather_strings",
]
