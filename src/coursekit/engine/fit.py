"""One training loop for every model in the course.

``fit`` minimises ``loss_fn(model, batch)`` by gradient descent: it moves the model and each batch to
the device, shows a tqdm progress bar (notebook-aware), evaluates on a validation loader, and
records a ``History`` of per-epoch losses and metrics. On CUDA it can use mixed precision.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from coursekit.device import get_device

LossFn = Callable[[nn.Module, Any], torch.Tensor]
MetricsFn = Callable[[nn.Module, Iterable], Mapping[str, float]]


def to_device(obj, device: torch.device):
    """Move tensors inside nested tuples, lists and dicts to ``device`` (other objects pass through)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


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


def _mean_loss(model: nn.Module, loader: Iterable, loss_fn: LossFn, device: torch.device) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            loss = loss_fn(model, to_device(batch, device))
            total += float(loss)
            count += 1
    return total / max(count, 1)


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
    bfloat16 autocast on CUDA (ignored elsewhere); ``grad_clip`` clips the global gradient norm;
    ``scheduler`` is stepped once per batch. A non-finite loss stops training with an error.
    """
    device = get_device(device)
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    use_amp = amp and device.type == "cuda"
    history = History()
    bar = tqdm(total=epochs * _length(train_loader), desc=desc, disable=not progress, leave=False,
               file=sys.stderr)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for batch in train_loader:
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                bar.close()
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch}: lower the learning rate or clip gradients")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach())
            count += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{total / count:.4f}")
        record = {"epoch": epoch, "train_loss": total / max(count, 1),
                  "lr": optimizer.param_groups[0]["lr"]}
        if val_loader is not None:
            model.eval()
            record["val_loss"] = _mean_loss(model, val_loader, loss_fn, device)
            if metrics is not None:
                with torch.no_grad():
                    record.update({k: float(v) for k, v in metrics(model, val_loader).items()})
        record["seconds"] = time.perf_counter() - start
        history.records.append(record)
    bar.close()
    model.eval()
    return history


def _length(loader: Iterable) -> int:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return 0
