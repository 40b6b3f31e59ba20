"""One training loop for every model in the course.

``fit`` minimises ``loss_fn(model, batch)`` by gradient descent: it moves the model and each batch to
the device, shows a tqdm progress bar (notebook-aware), evaluates on a validation loader, and
records a ``History`` of per-epoch losses and metrics. On CUDA it can use mixed precision.

The loop keeps the running loss on the device and reads it (one host sync) only every
``READ_EVERY`` steps and at the end of an epoch, which is also when a non-finite loss is caught. On
CUDA, in-memory ``Batches`` that fit comfortably are moved to the GPU once, so each step gathers its
batch there instead of copying it from (unpinned) host memory.

Data parallel: inside a ``torch.distributed`` process group (``coursekit.distributed``; the command
line joins one under ``torchrun``), ``fit`` wraps the model in ``DistributedDataParallel``, trains each
rank on its shard of every batch (``Batches.shard``, global batch size kept), averages the recorded
losses and metrics over the ranks, shows the progress bar on rank 0 only, and keeps the replicas'
buffers (BatchNorm statistics) equal to rank 0's after every epoch.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from coursekit import distributed
from coursekit.data.batches import Batches
from coursekit.device import get_device, seeded
from coursekit.errors import UsageError

LossFn = Callable[[nn.Module, Any], torch.Tensor]
MetricsFn = Callable[[nn.Module, Iterable], Mapping[str, float]]


def _map_tensors(obj, fn: Callable[[torch.Tensor], torch.Tensor]):
    """``fn`` applied to every tensor inside nested tuples, lists and dicts (other objects pass through)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, Mapping):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def to_device(obj, device: torch.device):
    """Move tensors inside nested tuples, lists and dicts to ``device`` (other objects pass through)."""
    return _map_tensors(obj, lambda t: t.to(device, non_blocking=True))


def to_channels_last(obj):
    """4-D floating-point tensors inside nested containers stored channels-last (NHWC); others unchanged."""
    return _map_tensors(obj, lambda t: t.contiguous(memory_format=torch.channels_last)
                        if t.dim() == 4 and t.is_floating_point() else t)


@dataclass
class History:
    """Per-epoch records of a ``fit`` run: ``history["train_loss"]`` is a list with one value an epoch."""

    records: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        return [r[key] for r in self.records if key in r]

    def keys(self) -> list[str]:
        return sorted({k for r in self.records for k in r})

    @property
    def last(self) -> dict[str, float]:
        return dict(self.records[-1]) if self.records else {}

    def to_dict(self) -> dict[str, list[float]]:
        return {k: self[k] for k in self.keys()}


# Read the running training loss (a host sync) every this many steps, for the progress bar and to stop
# on a non-finite loss; and at the end of every epoch.
READ_EVERY = 50

# Move in-memory batches to the GPU when they take at most this fraction of its free memory.
PREPLACE_FRACTION = 0.25


def _mean_loss(model: nn.Module, loader: Iterable, loss_fn: LossFn, device: torch.device) -> float:
    total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: one sync at the end
    count = 0
    with torch.no_grad():
        for batch in loader:
            total += loss_fn(model, to_device(batch, device)).detach().double()
            count += 1
    return float(total) / max(count, 1)


class _Objective(nn.Module):
    """``loss_fn(model, batch)`` as a module's ``forward``, so ``DistributedDataParallel`` can wrap it.

    DDP synchronises the gradients of what its ``forward`` computes; our losses call ``encode`` and
    ``decode`` or the model with targets, so the loss itself is the forward, and the model's own
    ``forward`` and modules stay as they are.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch) -> torch.Tensor:
        return self.loss_fn(self.model, batch)


class _MovedBatches:
    """A loader whose batches are moved to ``device`` as they come (``metrics`` sees them there too)."""

    def __init__(self, loader: Iterable, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return _length(self.loader)

    def __iter__(self):
        return (to_device(batch, self.device) for batch in self.loader)


def _on_device(loader: Iterable | None, device: torch.device, *, validation: bool = False) -> Iterable | None:
    """In-memory ``Batches`` moved to the GPU once when they fit comfortably; on the CPU, unchanged.

    A validation loader that stays in host memory is wrapped so that its batches reach ``metrics`` on
    the device (the training loop moves its own batches).
    """
    if device.type == "cpu" or loader is None:
        return loader
    if isinstance(loader, Batches) and device.type == "cuda":
        if all(t.device == device for t in loader.tensors):
            return loader
        free, _ = torch.cuda.mem_get_info(device)
        if loader.nbytes <= PREPLACE_FRACTION * free:
            return loader.to(device)
    return _MovedBatches(loader, device) if validation else loader


def _shard(loader: Iterable) -> Iterable:
    """This rank's part of ``loader`` for data-parallel training."""
    rank, world = distributed.rank(), distributed.world_size()
    if isinstance(loader, Batches):
        return loader.shard(rank, world, augment_seed=distributed.rank_seed(loader.seed, rank))
    sampler = getattr(loader, "sampler", None)
    if sampler is not None and getattr(sampler, "num_replicas", None) == world:
        return loader  # a DataLoader with a DistributedSampler: already one rank's part
    raise UsageError(f"fit cannot split a {type(loader).__name__} between {world} processes: pass coursekit "
                     "Batches or a DataLoader with a DistributedSampler, or run a single process")


def _distributed_setup(model: nn.Module, loss_fn: LossFn, train_loader: Iterable, device: torch.device):
    """The DDP-wrapped objective, this rank's loader and its random seed, in a process group."""
    from torch.nn.parallel import DistributedDataParallel

    # Some losses leave parameters out (fine-tuning a stacked AE's classifier never uses its decoders).
    # Each loop of the course uses the same parameters at every step, so DDP can learn which from the first
    # step (static_graph) instead of searching the autograd graph at every step (find_unused_parameters).
    options: dict[str, Any] = dict(static_graph=True)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        options.update(device_ids=[index], output_device=index)
    wrapped = DistributedDataParallel(_Objective(model, loss_fn), **options)
    # Same base seed on every rank (the model was just built from it), offset by the rank.
    return wrapped, _shard(train_loader), distributed.rank_seed(torch.initial_seed())


def fit(
    model: nn.Module,
    train_loader: Iterable,
    loss_fn: LossFn,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    val_loader: Iterable | None = None,
    metrics: MetricsFn | None = None,
    device: torch.device | str | None = None,
    amp: bool = False,
    channels_last: bool | None = None,
    grad_clip: float | None = None,
    scheduler: Any = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train ``model`` for ``epochs`` epochs; return its ``History``.

    ``loss_fn(model, batch)`` returns the scalar loss of one batch (already on the device), so the same
    loop serves an autoencoder (``mse(model(x), x)``) and a detector (sum of its loss dict).
    Each epoch records ``train_loss`` (mean over batches), ``val_loss`` when ``val_loader`` is given,
    whatever ``metrics(model, val_loader)`` returns, ``lr`` and ``seconds``. ``amp`` turns on
    bfloat16 autocast on CUDA (ignored elsewhere); ``channels_last`` stores the model's 4-D weights and
    each batch's images channels-last (NHWC), which bf16 convolutions need to be fast (``None``: on
    CUDA whenever ``amp`` is on; U-Net trains 2.5x and FCN-8s 1.6x faster than fp32 on an H200 that way,
    bf16 alone is slower than fp32: ``benchmarks/README.md``); ``grad_clip`` clips the global gradient norm;
    ``scheduler`` is stepped once per batch. A non-finite loss stops training with a
    ``FloatingPointError`` when the running loss is next read (every ``READ_EVERY`` steps and at the end
    of each epoch). Inside a ``torch.distributed`` process group the run is data parallel (see above).
    """
    device = get_device(device)
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    use_amp = amp and device.type == "cuda"
    if (use_amp if channels_last is None else channels_last):
        model.to(memory_format=torch.channels_last)
        layout = to_channels_last
    else:
        layout = None
    train_loader, val_loader = _on_device(train_loader, device), _on_device(val_loader, device, validation=True)
    parallel = distributed.is_active()
    if parallel:
        objective, train_loader, seed = _distributed_setup(model, loss_fn, train_loader, device)
        random_state = seeded(seed)  # augmentation / corruption noise differs by rank, not the model's init
        progress = progress and distributed.is_main()
    else:
        objective, random_state = None, nullcontext()
    history = History()
    bar = tqdm(total=epochs * _length(train_loader), desc=desc, disable=not progress, leave=False,
               file=sys.stderr)
    with random_state:
        try:
            for epoch in range(1, epochs + 1):
                start = time.perf_counter()
                model.train()
                set_epoch = getattr(getattr(train_loader, "sampler", None), "set_epoch", None)
                if parallel and set_epoch is not None:
                    set_epoch(epoch)  # a DistributedSampler draws a new order every epoch
                # The sum of the batch losses stays on the device (float64, the sum a Python float
                # would give) and is read only every READ_EVERY steps and at the end of the epoch.
                total = torch.zeros((), dtype=torch.float64, device=device)
                count = 0
                for batch in train_loader:
                    batch = to_device(batch, device)
                    if layout is not None:
                        batch = layout(batch)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                        loss = objective(batch) if parallel else loss_fn(model, batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if grad_clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    total += loss.detach().double()
                    count += 1
                    bar.update(1)
                    if count % READ_EVERY == 0:
                        bar.set_postfix(epoch=epoch, loss=f"{_read_mean(total, count, epoch):.4f}")
                record = {"epoch": epoch, "train_loss": _read_mean(total, count, epoch),
                          "lr": optimizer.param_groups[0]["lr"]}
                bar.set_postfix(epoch=epoch, loss=f"{record['train_loss']:.4f}")
                if parallel:
                    distributed.broadcast_buffers(model)  # evaluate (and save) rank 0's BatchNorm statistics
                if val_loader is not None:
                    model.eval()
                    record["val_loss"] = _mean_loss(model, val_loader, loss_fn, device)
                    if metrics is not None:
                        with torch.no_grad():
                            record.update({k: float(v) for k, v in metrics(model, val_loader).items()})
                if parallel:  # every rank validates the same model on all of val: equal up to round-off
                    keys = [k for k in record if k not in ("epoch", "lr", "train_loss")]
                    record.update(zip(keys, distributed.all_mean([record[k] for k in keys])))
                record["seconds"] = time.perf_counter() - start
                history.records.append(record)
        finally:
            bar.close()
    model.eval()
    return history


def _read_mean(total: torch.Tensor, count: int, epoch: int) -> float:
    """The mean batch loss so far (over all ranks in a process group): one host sync.

    Raises ``FloatingPointError`` when a loss since the last read was not finite (on every rank at once).
    """
    if distributed.is_active():
        total = distributed.all_sum_(total.clone()) / distributed.world_size()
    value = float(total)
    if not math.isfinite(value):
        raise FloatingPointError(
            f"loss became {value} at epoch {epoch}: lower the learning rate or clip gradients")
    return value / max(count, 1)


def _length(loader: Iterable) -> int:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return 0
