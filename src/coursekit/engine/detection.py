"""Train and evaluate torchvision detectors (Faster R-CNN, Mask R-CNN) with ``fit``.

A torchvision detector in training mode takes images and targets and returns a dict of losses (RPN
objectness and box regression, box-head classification and regression, and for Mask R-CNN the
per-pixel mask loss); ``detection_loss`` sums them for ``fit``. Detectors trained from scratch
diverge easily in their first steps (the FPN's untrained features give huge regression losses), so
``train_detector`` warms the learning rate up linearly, then anneals it with a cosine, and clips the
gradient norm. On CUDA it runs in bfloat16 autocast (``fit``'s ``amp``).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from coursekit import distributed
from coursekit.data import detection_collate
from coursekit.device import get_device, seeded
from coursekit.engine.fit import History, fit
from coursekit.metrics.detection import coco_summary


def clean_targets(targets: list[dict]) -> list[dict]:
    """Drop degenerate boxes (x2 <= x1 or y2 <= y1): torchvision refuses them in training."""
    cleaned = []
    for t in targets:
        ok = (t["boxes"][:, 2] > t["boxes"][:, 0]) & (t["boxes"][:, 3] > t["boxes"][:, 1])
        cleaned.append({k: v[ok] for k, v in t.items()})
    return cleaned


def detection_loss(model: nn.Module, batch) -> torch.Tensor:
    """Sum of the loss dict a torchvision detector returns in training mode."""
    images, targets = batch
    return sum(model(images, clean_targets(targets)).values())


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning-rate factor rising linearly from 1/warmup to 1 over ``warmup`` steps, then a cosine to 0."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_detector(model: nn.Module, dataset: Dataset, *, epochs: int, lr: float = 2e-3, batch_size: int = 8,
                   weight_decay: float = 1e-4, warmup: int = 100, grad_clip: float = 5.0,
                   device: torch.device | str | None = None, progress: bool = False, seed: int = 0,
                   desc: str = "detector") -> History:
    """Train a torchvision detector on ``dataset`` (image, target) pairs with AdamW, linear warm-up over
    ``warmup`` steps, cosine decay and gradient clipping; mixed precision on CUDA. Returns the History.

    The scenes are shuffled from ``seed``; the run is ``seeded(seed)``, so the caller's RNG is untouched.
    Inside a ``torch.distributed`` process group each rank trains on its shard of the scenes (a
    ``DistributedSampler``, ``batch_size / world_size`` scenes a step) and ``fit`` wraps the model in DDP.
    """
    device = get_device(device)
    if distributed.is_active():  # data parallel: each rank its shard of the scenes, the global batch kept
        world = distributed.world_size()
        sampler = DistributedSampler(dataset, num_replicas=world, rank=distributed.rank(), shuffle=True, seed=seed)
        loader = DataLoader(dataset, batch_size=max(1, -(-batch_size // world)), sampler=sampler,
                            collate_fn=detection_collate)
    else:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=detection_collate,
                            generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = warmup_cosine(optimizer, min(warmup, epochs * len(loader) // 4 + 1), epochs * len(loader))
    with seeded(seed):
        return fit(model, loader, detection_loss, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                   grad_clip=grad_clip, amp=True, device=device, progress=progress, desc=desc)


@torch.no_grad()
def predict(model: nn.Module, images: Iterable[torch.Tensor], batch_size: int = 32) -> list[dict]:
    """The model's detections for each image (on the CPU; float32 boxes, scores and masks, int64 labels),
    computed in eval mode on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    images = list(images)
    out: list[dict] = []
    for start in range(0, len(images), batch_size):
        batch = [im.to(device) for im in images[start:start + batch_size]]
        out += [{k: (v.float() if v.is_floating_point() else v).cpu() for k, v in p.items()} for p in model(batch)]
    return out


def evaluate_detector(model: nn.Module, dataset: Dataset, masks: bool | None = None) -> dict[str, float]:
    """COCO-style box AP (and mask AP when the model predicts masks) on every scene of ``dataset``:
    ``box_ap50``, ``box_ap75``, ``box_ap`` (mean over IoU 0.5:0.95), likewise ``mask_*``."""
    images, targets = zip(*(dataset[i] for i in range(len(dataset))))
    predictions = predict(model, images)
    masks = ("masks" in predictions[0]) if masks is None else masks
    metrics = coco_summary(predictions, targets, kind="box")
    if masks:
        metrics.update(coco_summary(predictions, targets, kind="mask"))
    return metrics
