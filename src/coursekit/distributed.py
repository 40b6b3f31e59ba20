"""Data-parallel training over several processes (``torchrun``), with ``torch.distributed``.

``coursekit train NAME ...`` runs unchanged under

    torchrun --nproc-per-node 4 -m coursekit train unet ...                       # one machine, 4 processes
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29400 --rdzv-id run1 -m coursekit train unet ...  # two machines

torchrun starts one process per GPU (or per CPU worker) and sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each. When ``WORLD_SIZE`` is more than 1 the
command line calls ``init`` once: it joins the process group (``nccl`` on CUDA, where each process
takes the GPU ``cuda:LOCAL_RANK``, ``gloo`` on the CPU) and ``shutdown`` leaves it at the end.
Everything else happens in ``coursekit.engine.fit`` as soon as a process group is initialised:

* the model is wrapped in ``DistributedDataParallel``, so every step averages the gradients of all ranks;
* each rank trains on its own shard of every global batch (``Batches.shard``): the shuffled order is
  drawn from the same seed on every rank, so the shards are disjoint and cover the data, and the
  global batch size stays what the recipe says (each rank takes ``batch_size / world_size``);
* losses and metrics are averaged over the ranks where they are recorded, so every rank's history
  holds the same numbers;
* only rank 0 shows a progress bar, prints and writes files (``is_main``);
* augmentation and corruption noise are drawn from seeds offset by the rank, while the model's
  initialisation is the same on every rank (DDP also broadcasts rank 0's weights when it wraps them).

Outside torchrun (``WORLD_SIZE`` unset or 1) nothing here does anything: a run is the plain
single-process run, bit for bit.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.distributed as dist

from coursekit.errors import UsageError


def requested() -> bool:
    """True when the environment asks for several processes (torchrun's ``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def env_rank() -> int:
    """This process's global rank from the environment (0 outside torchrun); usable before ``init``."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_active() -> bool:
    """True when this process belongs to an initialised process group (``fit`` then uses DDP)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    """Number of processes training together (1 when not distributed)."""
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    """True on the process that prints, shows progress and writes files (rank 0, or the only one)."""
    return rank() == 0 if is_active() else env_rank() == 0


def init(device: torch.device) -> torch.device:
    """Join the process group torchrun describes, if it describes one; return the device to train on.

    Does nothing (and returns ``device``) unless ``WORLD_SIZE`` > 1. On CUDA the backend is ``nccl``
    and the device becomes ``cuda:LOCAL_RANK``; on the CPU it is ``gloo``. Other devices are refused.
    Calling it again once the group exists changes nothing.
    """
    if not requested():
        return device
    if device.type == "cuda":
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "0")) or int(os.environ.get("LOCAL_RANK", "0")) + 1
        if local_ranks > torch.cuda.device_count():  # the same answer on every rank of this machine
            raise UsageError(f"{local_ranks} processes on this machine but {torch.cuda.device_count()} GPU(s): "
                             "start at most one process per GPU (torchrun --nproc-per-node)")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise UsageError(f"distributed training runs on cuda or cpu, not {device.type}")
    if not dist.is_available():
        raise UsageError("this build of torch has no torch.distributed: run a single process")
    if not dist.is_initialized():
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    return device


def shutdown() -> None:
    """Leave the process group (after the last collective), if this process is in one."""
    if is_active():
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    """Where tensors for collectives must live: the current GPU for nccl, the CPU otherwise."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_mean(values: Sequence[float]) -> list[float]:
    """The mean over all ranks of each number in ``values`` (float64; unchanged when not distributed)."""
    if not is_active() or not values:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def all_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place (no-op when not distributed); returns it."""
    if is_active():
        dist.all_reduce(tensor)
    return tensor


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm's running statistics) to every rank.

    Each rank updates its running statistics from its own shard in training mode; after this every
    replica evaluates, and saves, the same model.
    """
    if not is_active():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src)


def rank_seed(seed: int, of_rank: int | None = None) -> int:
    """A seed for one rank's random draws (augmentation, corruption noise), derived from ``seed``:
    different on every rank, and different from ``seed`` itself (which draws the model's
    initialisation and the shuffled order, the same on every rank). ``of_rank`` defaults to this one."""
    of_rank = rank() if of_rank is None else of_rank
    return (seed + 104_729 * (of_rank + 1)) % 2**63


__all__ = ["all_mean", "all_sum_", "broadcast_buffers", "env_rank", "init", "is_active", "is_main", "rank",
           "rank_seed", "requested", "shutdown", "world_size"]
