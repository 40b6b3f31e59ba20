"""Semantic-segmentation metrics from one dataset-level confusion matrix, as PASCAL VOC computes them.

The confusion matrix ``cm[t, p]`` counts the pixels of true class ``t`` predicted as ``p``, summed over
*every* pixel of the evaluated set (pixels labelled ``ignore_index``, 255 in VOC, are left out). All
metrics then follow from it:

* pixel accuracy  ``sum_c cm[c, c] / sum cm``
* IoU of class c  ``TP / (TP + FP + FN)`` with ``TP = cm[c, c]``, ``FP = cm[:, c].sum() - TP``,
  ``FN = cm[c, :].sum() - TP``; mIoU is their mean over classes
* Dice of class c ``2 TP / (2 TP + FP + FN)`` (the F1 score), and its mean over classes.

mIoU is *not* the mean of per-image IoUs: a small image where one pixel is wrong would weigh as much as
a large one. A class absent from both truth and prediction has no IoU (NaN) and is left out of means.
"""

from __future__ import annotations

from typing import Sequence

import torch

from coursekit.ops.losses import IGNORE_INDEX  # 255, as in VOC: the same label for losses and metrics


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int | None = IGNORE_INDEX) -> torch.Tensor:
    """``(num_classes, num_classes)`` int64 counts, rows = true class, columns = predicted class.

    ``pred`` and ``target`` are class ids of the same shape (any shape). Target pixels equal to
    ``ignore_index`` are skipped; any other id outside ``0..num_classes-1`` is an error.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, ids in (("target", target), ("pred", pred)):
        if ids.numel() and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"{name} holds class ids outside 0..{num_classes - 1}")
    return torch.bincount(target * num_classes + pred, minlength=num_classes ** 2) \
        .reshape(num_classes, num_classes).cpu()


class ConfusionMatrix:
    """Accumulates a confusion matrix over batches; ``update(logits_or_ids, target)`` then read metrics.

    ``update`` takes either predicted ids ``(B, H, W)`` or scores ``(B, C, H, W)`` (argmax over C).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> "ConfusionMatrix":
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        self.matrix += confusion_matrix(pred.detach(), target.detach(), self.num_classes, self.ignore_index)
        return self

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, float]:
        return segmentation_summary(self.matrix, class_names)


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Fraction of (non-ignored) pixels whose class is right."""
    total = cm.sum()
    return float(cm.diag().sum() / total) if total > 0 else float("nan")


def _tp_fp_fn(cm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cm = cm.double()
    tp = cm.diag()
    return tp, cm.sum(0) - tp, cm.sum(1) - tp


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """IoU of each class, NaN for a class that appears in neither truth nor prediction."""
    tp, fp, fn = _tp_fp_fn(cm)
    union = tp + fp + fn
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def dice_per_class(cm: torch.Tensor) -> torch.Tensor:
    """Dice (F1) of each class, ``2 TP / (2 TP + FP + FN)``; NaN where the class is absent."""
    tp, fp, fn = _tp_fp_fn(cm)
    denom = 2 * tp + fp + fn
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(cm: torch.Tensor) -> float:
    """Mean IoU over the classes that occur (NaN classes left out)."""
    return float(iou_per_class(cm).nanmean())


def mean_dice(cm: torch.Tensor) -> float:
    """Mean Dice over the classes that occur."""
    return float(dice_per_class(cm).nanmean())


def segmentation_summary(cm: torch.Tensor, class_names: Sequence[str] | None = None) -> dict[str, float]:
    """``pixel_accuracy``, ``miou``, ``dice`` (mean over classes) and ``iou_<class>`` for each class."""
    names = class_names or [str(c) for c in range(cm.shape[0])]
    out = {"pixel_accuracy": pixel_accuracy(cm), "miou": mean_iou(cm), "dice": mean_dice(cm)}
    out.update({f"iou_{name}": float(v) for name, v in zip(names, iou_per_class(cm))})
    return out
