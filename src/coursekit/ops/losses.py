"""Losses: the autoencoders' reconstruction loss, and segmentation's cross-entropy, soft Dice and their sum.

``reconstruction_loss(x_hat, x, "mse" | "bce")`` is L(x, g(f(x))) of Part I: the squared error per pixel,
or the cross-entropy of pixels read as bit probabilities.

For segmentation, cross-entropy averages over pixels, so with 87 % background (our shapes) the background dominates
the gradient. The soft Dice loss (Milletari et al., 2016, "V-Net") scores each class by the overlap
of its predicted probabilities ``p`` with its one-hot truth ``g``,

    Dice_c = (2 Σ p_c g_c + ε) / (Σ p_c + Σ g_c + ε),   loss = 1 − mean_c Dice_c,

so every class weighs the same whatever its pixel count. Pixels labelled ``ignore_index`` (255)
count in neither loss.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255  # VOC's "void" label: pixels that the losses, the metrics and our datasets all skip


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, loss: Literal["mse", "bce"] = "mse") -> torch.Tensor:
    """L(x, x̂) averaged over pixels: (x̂ − x)² for ``"mse"``, −[x log x̂ + (1 − x) log(1 − x̂)] for ``"bce"``.

    ``"bce"`` needs x̂ in [0, 1] (a sigmoid output) and reads each target pixel as a bit probability.
    """
    if loss == "mse":
        return F.mse_loss(x_hat, x)
    if loss == "bce":
        return F.binary_cross_entropy(x_hat, x)
    raise ValueError(f"unknown loss {loss!r}: use 'mse' or 'bce'")


def _full_precision(logits: torch.Tensor) -> torch.Tensor:
    """Losses are summed in float32 at least, even when the model ran in bfloat16/float16 (AMP)."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over non-ignored pixels; ``logits`` (B, C, H, W), ``target`` (B, H, W)."""
    return F.cross_entropy(_full_precision(logits), target, weight=weight, ignore_index=ignore_index)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                   eps: float = 1.0, include_background: bool = True) -> torch.Tensor:
    """``1 − mean_c Dice_c`` with softmax probabilities, sums taken over the whole batch.

    ``eps`` smooths the ratio (a class absent from batch and prediction scores Dice 1, not 0/0).
    With ``include_background=False`` class 0 is left out of the mean.
    """
    num_classes = logits.shape[1]
    probs = _full_precision(logits).softmax(1)
    valid = (target != ignore_index)
    onehot = F.one_hot(torch.where(valid, target, 0), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    valid = valid.unsqueeze(1).to(probs.dtype)
    probs, onehot = probs * valid, onehot * valid
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    dice = (2 * intersection + eps) / (probs.sum(dims) + onehot.sum(dims) + eps)
    if not include_background:
        dice = dice[1:]
    return 1 - dice.mean()


class SegmentationLoss(nn.Module):
    """``ce_weight · cross_entropy + dice_weight · soft_dice``; ``kind`` "ce", "dice" or "ce+dice"."""

    def __init__(self, kind: str = "ce", ignore_index: int = IGNORE_INDEX):
        super().__init__()
        weights = {"ce": (1.0, 0.0), "dice": (0.0, 1.0), "ce+dice": (1.0, 1.0)}
        if kind not in weights:
            raise ValueError(f"unknown loss {kind!r}: use one of {sorted(weights)}")
        self.kind, self.ignore_index = kind, ignore_index
        self.ce_weight, self.dice_weight = weights[kind]

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.ce_weight:
            loss = loss + self.ce_weight * cross_entropy(logits, target, self.ignore_index)
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target, self.ignore_index)
        return loss
