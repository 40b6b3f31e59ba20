"""Training and evaluation shared by the segmentation chapters and recipes (FCN, SegNet, U-Net).

``train_segmentation`` runs ``fit`` with a segmentation loss (cross-entropy, soft Dice or both),
AdamW and a one-cycle learning-rate schedule, random flips/transposes as augmentation (our shapes'
classes do not change under them), and bfloat16 mixed precision on CUDA; ``evaluate`` accumulates one
confusion matrix over the whole split (``coursekit.metrics.segmentation``); ``train_and_test``
compares several models trained on the same budget (``coursekit.plot.format_results`` prints them);
``checkpoint_results`` gives the same rows for the shipped checkpoints of the recipes.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping

import torch
from torch import nn

from coursekit.data import CLASSES, Split
from coursekit.device import get_device, seeded
from coursekit.engine.fit import History, fit
from coursekit.metrics.segmentation import ConfusionMatrix
from coursekit.models import count_parameters
from coursekit.ops.losses import SegmentationLoss


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 64,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Predicted class ids (N, H, W) on the CPU for images (N, 3, H, W)."""
    device = get_device(device)
    model.eval().to(device)
    outs = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outs.append(model(x).argmax(1).cpu())
    return torch.cat(outs)


def evaluate(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, num_classes: int = len(CLASSES),
             batch_size: int = 64, device: torch.device | str | None = None) -> ConfusionMatrix:
    """One dataset-level confusion matrix of ``model`` on (images, masks) with ``num_classes`` classes (the
    split's ``len(split.classes)``; the default is the shapes' four); read ``.summary(split.classes)``."""
    cm = ConfusionMatrix(num_classes)
    for start in range(0, len(images), batch_size):
        cm.update(predict(model, images[start:start + batch_size], batch_size, device),
                  masks[start:start + batch_size])
    return cm


def train_segmentation(model: nn.Module, split: Split, *, epochs: int, lr: float = 3e-3,
                       batch_size: int = 32, loss: str = "ce", weight_decay: float = 1e-4,
                       augment: bool = True, device: torch.device | str | None = None, amp: bool = True,
                       progress: bool = True, seed: int = 0, desc: str = "train") -> History:
    """Train ``model`` on ``split``'s training scenes; each epoch records ``val_miou``.

    The history's ``train_seconds`` (last record) is the wall time of the whole run.
    """
    criterion = SegmentationLoss(loss)
    train_loader = split.loader("train", batch_size, augment=augment, seed=seed)
    val_loader = split.loader("val", 128)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(train_loader),
                                                    pct_start=0.2)

    def loss_fn(m: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return criterion(m(x), y)

    def metrics(m: nn.Module, loader) -> dict[str, float]:
        cm = ConfusionMatrix(len(split.classes))
        for x, y in loader:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp and x.device.type == "cuda"):
                cm.update(m(x), y)
        return {"val_miou": cm.summary()["miou"]}

    start = time.perf_counter()
    history = fit(model, train_loader, loss_fn, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  val_loader=val_loader, metrics=metrics, device=device, amp=amp, progress=progress, desc=desc)
    history.records[-1]["train_seconds"] = time.perf_counter() - start
    return history


def train_and_test(builders: dict[str, Callable[..., nn.Module]], split: Split, *, epochs: int,
                   device: torch.device | str | None = None, seed: int = 0,
                   **train_kwargs) -> tuple[dict[str, nn.Module], dict[str, dict[str, float]]]:
    """Train one model per builder on ``split`` (same seed, same budget), then test each.

    Returns the trained models and, per name, the test metrics (``summary(split.classes)``) with ``seconds``
    (training wall time) and ``params``: the rows of ``coursekit.plot.format_results``. Each model is
    built and trained inside ``seeded(seed)``, so the order of ``builders`` does not matter.
    """
    models, results = {}, {}
    for name, build in builders.items():
        with seeded(seed):
            models[name] = build(num_classes=len(split.classes))
            start = time.perf_counter()
            train_segmentation(models[name], split, epochs=epochs, device=device, progress=False, seed=seed,
                               **train_kwargs)
            seconds = time.perf_counter() - start
        cm = evaluate(models[name], split.x_test, split.y_test, len(split.classes), device=device)
        results[name] = {**cm.summary(split.classes),
                         "seconds": seconds, "params": count_parameters(models[name])}
    return models, results


def checkpoint_results(names: Mapping[str, str], split: Split, *, device: torch.device | str | None = None
                     ) -> tuple[dict[str, nn.Module], dict[str, dict[str, float]]]:
    """Shipped checkpoints (a label for each name in ``checkpoints/``) tested on ``split``'s test scenes.

    Returns the models and rows like ``train_and_test``'s: the test metrics, ``params``, ``seconds`` (the
    training time the checkpoint's sidecar records, on the machine that trained it) and ``recorded_miou``
    (the test mIoU it records, on the recipe's test scenes).
    """
    from coursekit.checkpoint import load_trained

    models, rows = {}, {}
    for label, name in names.items():
        models[label], meta = load_trained(name)  # rebuilt from its sidecar, on the CPU, in eval mode
        cm = evaluate(models[label], split.x_test, split.y_test, len(split.classes), device=device)
        rows[label] = {**cm.summary(split.classes), "params": count_parameters(models[label]),
                       "seconds": meta["metrics"]["train_seconds"], "recorded_miou": meta["metrics"]["miou"]}
    return models, rows
