"""One training loop for every model in the course, and checkpoints with a JSON sidecar.

``fit`` minimises ``loss_fn(model, batch)`` by gradient descent: it moves the model and each batch to
the device, shows a tqdm progress bar (notebook-aware), evaluates on a validation loader, and
records a ``History`` of per-epoch losses and metrics. On CUDA it can use mixed precision.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
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
    device = get_device(device) if not isinstance(device, torch.device) else device
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


# --------------------------------------------------------------------------------------------------
# Checkpoints: weights in NAME.pt, and NAME.json beside it saying how they were made.

class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or does not fit the model it is loaded into."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that matter for reproducing a run."""
    import numpy
    import torchvision

    from coursekit import __version__

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "coursekit": __version__}


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, name: str, config: Mapping[str, Any],
                    seed: int, metrics: Mapping[str, float], command: str | None = None,
                    history: History | None = None) -> Path:
    """Save ``model``'s weights to ``path`` and a JSON sidecar (same stem, ``.json``).

    The sidecar records the model ``name`` and ``config`` (the builder's arguments), the exact
    ``command`` that made it, the ``seed``, library versions, final ``metrics``, the training
    ``history`` and the SHA-256 of the weights, so a later load can tell a swapped or damaged file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    meta = {
        "name": name,
        "config": dict(config),
        "command": command if command is not None else " ".join(sys.argv),
        "seed": seed,
        "versions": library_versions(),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "history": history.to_dict() if history is not None else {},
        "sha256": _sha256(path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    sidecar_path(path).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint's JSON sidecar; raise ``CheckpointError`` naming the file when it is unusable."""
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{side}: sidecar missing (every checkpoint needs its .json beside it)")
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{side}: sidecar is not valid JSON ({err})") from err
    for key in ("name", "config", "sha256"):
        if key not in meta:
            raise CheckpointError(f"{side}: sidecar lacks the field {key!r}")
    return meta


def load_checkpoint(path: str | os.PathLike, model: nn.Module, *, expect_name: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load weights saved by ``save_checkpoint`` into ``model``; return the sidecar.

    Raises ``CheckpointError`` naming the file and the problem when the file is missing, its hash
    does not match the sidecar (corrupt or replaced), it cannot be unpickled, it was saved for
    another model (``expect_name``), or its tensors do not fit ``model`` (missing, extra or
    mis-shaped parameters).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    meta = read_sidecar(path)
    if expect_name is not None and meta["name"] != expect_name:
        raise CheckpointError(f"{path}: checkpoint is for model {meta['name']!r}, not {expect_name!r}")
    if _sha256(path) != meta["sha256"]:
        raise CheckpointError(f"{path}: SHA-256 differs from its sidecar: the file is corrupt or was replaced")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for a damaged archive
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({err})") from err
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if extra:
            parts.append(f"unexpected {extra[:5]}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise CheckpointError(f"{path}: does not fit this model: " + ", ".join(parts))
    model.load_state_dict(state)
    return meta
