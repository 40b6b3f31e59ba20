"""Training and evaluation shared by the segmentation chapters and recipes (FCN, SegNet, U-Net).

``load_shapes_split`` generates train/val/test scenes once and stacks them into tensors;
``train_segmentation`` runs ``coursekit.train.fit`` with a segmentation loss (cross-entropy, soft
Dice or both), AdamW and a one-cycle learning-rate schedule, random flips/transposes as augmentation
(our shapes' classes do not change under them), and bfloat16 mixed precision on CUDA;
``evaluate`` accumulates one confusion matrix over the whole split (``coursekit.metrics.segmentation``);
``train_and_test`` and ``format_results`` compare several models trained on the same budget; the
figures: ``mosaic``, ``scene_drawer`` (the chapters' widgets) and ``show_predictions``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from coursekit.data import CLASSES, ShapesSegmentation, Split
from coursekit.device import get_device, seed_everything
from coursekit.metrics.segmentation import ConfusionMatrix
from coursekit.models.losses import SegmentationLoss
from coursekit.models.segblocks import count_parameters
from coursekit.plot import colour_mask
from coursekit.train import History, fit


@dataclass
class SegSplit(Split):
    """A ``Split`` whose images ``x_*`` are (N, 3, H, W) in [0, 1] and whose labels ``y_*`` are masks (N, H, W)."""

    def loader(self, split: str, batch_size: int = 32, shuffle: bool | None = None, augment: bool = False,
               seed: int = 0) -> "PairLoader":
        """Batches of ``split`` ("train", "val" or "test"); shuffled by default for "train" only."""
        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        shuffle = split == "train" if shuffle is None else shuffle
        return PairLoader(x, y, batch_size, shuffle=shuffle, augment=augment, seed=seed)


def _stack(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = ShapesSegmentation(n, size=size, seed=seed)
    pairs = [ds[i] for i in range(n)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def load_shapes_split(n_train: int = 2000, n_val: int = 200, n_test: int = 500, size: int = 64,
                      seed: int = 0) -> SegSplit:
    """Shapes scenes for segmentation. Each split has its own scene seed (``3·seed + 0/1/2``), so the
    test scenes are the same whatever ``n_train`` is, and never overlap the training scenes."""
    return SegSplit(*_stack(n_train, size, 3 * seed), *_stack(n_val, size, 3 * seed + 1),
                    *_stack(n_test, size, 3 * seed + 2))


class PairLoader:
    """Mini-batches ``(images, masks)`` sliced from two tensors (much cheaper than a DataLoader for
    small images). With ``augment`` each batch is flipped and/or transposed at random."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32, shuffle: bool = True,
                 augment: bool = False, seed: int = 0):
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} masks")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.shuffle, self.augment = shuffle, augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.x), generator=self.generator) if self.shuffle else torch.arange(len(self.x))
        for start in range(0, len(self.x), self.batch_size):
            idx = order[start:start + self.batch_size]
            x, y = self.x[idx], self.y[idx]
            if self.augment:
                flip_h, flip_v, transpose = torch.rand(3, generator=self.generator) < 0.5
                if flip_h:
                    x, y = x.flip(-1), y.flip(-1)
                if flip_v:
                    x, y = x.flip(-2), y.flip(-2)
                if transpose:
                    x, y = x.transpose(-1, -2), y.transpose(-1, -2)
            yield x, y


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 64,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Predicted class ids (N, H, W) on the CPU for images (N, 3, H, W)."""
    device = get_device(device) if not isinstance(device, torch.device) else device
    model.eval().to(device)
    outs = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outs.append(model(x).argmax(1).cpu())
    return torch.cat(outs)


def evaluate(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, num_classes: int = len(CLASSES),
             batch_size: int = 64, device: torch.device | str | None = None) -> ConfusionMatrix:
    """One dataset-level confusion matrix of ``model`` on (images, masks); read ``.summary(CLASSES)``."""
    cm = ConfusionMatrix(num_classes)
    for start in range(0, len(images), batch_size):
        cm.update(predict(model, images[start:start + batch_size], batch_size, device),
                  masks[start:start + batch_size])
    return cm


def train_segmentation(model: nn.Module, split: SegSplit, *, epochs: int, lr: float = 3e-3,
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
        cm = ConfusionMatrix(len(CLASSES))
        for x, y in loader:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp and x.device.type == "cuda"):
                cm.update(m(x), y)
        return {"val_miou": cm.summary()["miou"]}

    start = time.perf_counter()
    history = fit(model, train_loader, loss_fn, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  val_loader=val_loader, metrics=metrics, device=device, amp=amp, progress=progress, desc=desc)
    history.records[-1]["train_seconds"] = time.perf_counter() - start
    return history


def train_and_test(builders: dict[str, Callable[..., nn.Module]], split: SegSplit, *, epochs: int,
                   device: torch.device | str | None = None, seed: int = 0,
                   **train_kwargs) -> tuple[dict[str, nn.Module], dict[str, dict[str, float]]]:
    """Train one model per builder on ``split`` (same seed, same budget), then test each.

    Returns the trained models and, per name, the test metrics (``summary(CLASSES)``) with ``seconds``
    (training wall time) and ``params``: the rows of ``format_results``.
    """
    models, results = {}, {}
    for name, build in builders.items():
        seed_everything(seed)
        models[name] = build(num_classes=len(CLASSES))
        start = time.perf_counter()
        train_segmentation(models[name], split, epochs=epochs, device=device, progress=False, seed=seed,
                           **train_kwargs)
        seconds = time.perf_counter() - start
        results[name] = {**evaluate(models[name], split.x_test, split.y_test, device=device).summary(CLASSES),
                         "seconds": seconds, "params": count_parameters(models[name])}
    return models, results


def format_results(results: dict[str, dict[str, float]]) -> str:
    """A text table, one row per model: parameters, training seconds, pixel accuracy, mIoU, Dice and
    the IoU of each class (keys as ``train_and_test`` returns them)."""
    header = (f"{'model':8s} {'params':>8s} {'train s':>8s} {'pixel acc':>9s} {'mIoU':>6s} {'Dice':>6s} "
              + " ".join(f"{'IoU ' + c[:6]:>10s}" for c in CLASSES))
    rows = [f"{name:8s} {r['params']:8,d} {r['seconds']:8.1f} {r['pixel_accuracy']:9.3f} {r['miou']:6.3f} "
            f"{r['dice']:6.3f} " + " ".join(f"{r['iou_' + c]:10.3f}" for c in CLASSES)
            for name, r in results.items()]
    return "\n".join([header, "-" * len(header), *rows])


# ---------------------------------------------------------------------------------------------- figures
def mosaic(image: torch.Tensor, masks: list[torch.Tensor], ncols: int | None = None, gap: int = 2) -> np.ndarray:
    """One RGB picture: the image, then each class-id mask in the class colours, in a grid of
    ``ncols`` columns (default: one row), row by row, white gaps between panels."""
    panels = [image.permute(1, 2, 0).cpu().numpy()] + [colour_mask(m) for m in masks]
    ncols = ncols or len(panels)
    height, width = panels[0].shape[:2]
    nrows = -(-len(panels) // ncols)
    out = np.ones((nrows * (height + gap) - gap, ncols * (width + gap) - gap, 3))
    for k, p in enumerate(panels):
        r, c = divmod(k, ncols)
        out[r * (height + gap):r * (height + gap) + height, c * (width + gap):c * (width + gap) + width] = p
    return out


def scene_drawer(images: torch.Tensor, masks: torch.Tensor, models: dict[str, nn.Module], *, ncols: int,
                 device: torch.device | str | None = None) -> Callable:
    """``draw(index, ax)`` for ``coursekit.widgets.knob_demo``: scene ``index`` as one ``mosaic`` of the
    image, its true mask and each model's prediction (computed once per scene, then cached)."""
    cache: dict[int, np.ndarray] = {}

    def draw(index: int, ax) -> None:
        if index not in cache:
            x = images[index:index + 1]
            cache[index] = mosaic(x[0], [masks[index]] + [predict(m, x, device=device)[0] for m in models.values()],
                                  ncols=ncols)
        ax.imshow(cache[index], interpolation="nearest")
        ax.set_title(f"scene {index}: truth, " + ", ".join(models), fontsize=8)
        ax.axis("off")

    return draw


def show_predictions(images: torch.Tensor, columns: dict[str, torch.Tensor], panel: float = 1.6):
    """A grid: one row per image, first column the image, then one column per named mask set
    (e.g. ``{"truth": y, "FCN-8s": pred}``). Returns the figure."""
    n, names = len(images), ["image", *columns]
    fig, axes = plt.subplots(n, len(names), figsize=(panel * len(names), panel * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i].permute(1, 2, 0).cpu().numpy())
        for j, masks in enumerate(columns.values(), start=1):
            axes[i, j].imshow(colour_mask(masks[i]), interpolation="nearest")
    for j, name in enumerate(names):
        axes[0, j].set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
