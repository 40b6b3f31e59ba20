"""Losses: the autoencoders' reconstruction loss, and segmentation's cross-entropy, soft Dice and their sum.

``reconstruction_loss(x_hat, x, "mse" | "bce")`` is L(x, g(f(x))) of Part I: the squared error per pixel,
or the cross-entropy of pixels read as bit probabilities.

For segmentation, cross-entropy averages over pixels, so with 87 % background (our shapes) the background dominates
the gradient. The soft Dice loss (Milletari et al., 2016, "V-Net") scores each class by the overlap
of its predicted probabilities ``p`` with its one-hot truth ``g``,

    Dice_c = (2 Σ p_c g_c + ε) / (Σ p_c + Σ g_c + ε),   loss = 1 − mean_c Dice_c,

so every class weighs the same whatever its pixel count. Pixels labelled ``ignore_index`` (255)
count in neither loss.

For instance segmentation, ``mask_loss`` is Mask R-CNN's mask term (He et al., 2017), the one
torchvision's ``maskrcnn_loss`` computes; ``mask_targets`` makes its M×M targets from the image masks.
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


def unet_weight_map(instances: torch.Tensor, w0: float = 10.0, sigma: float = 5.0,
                    class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """The U-Net paper's per-pixel loss weight (Ronneberger et al., 2015, eq. 2), for one image:

        w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²))   on background pixels, w_c(x) on objects,

    where d1 and d2 are the distances (in pixels) from x to the nearest and the second nearest object.
    The paper writes the border term for every pixel with distances to cell borders; we use the common
    variant that adds it on background pixels only, with distances to the objects' masks.
    The thin background gaps between touching objects get weights near w_c + w0, so a network trained
    with this weighted cross-entropy learns to keep them apart. ``instances`` is (K, H, W), one binary
    mask per object (K ≥ 2); ``class_weight`` (H, W) is w_c, which balances class frequencies (default 1).
    """
    if instances.dim() != 3 or len(instances) < 2:
        raise ValueError(f"instances must be (K, H, W) masks with K >= 2, got shape {tuple(instances.shape)}")
    k, h, w = instances.shape
    rows, cols = torch.arange(h, device=instances.device), torch.arange(w, device=instances.device)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2).float()
    distance = torch.stack([torch.cdist(grid, grid[m.reshape(-1).bool()]).min(1).values if m.any()
                            else torch.full((h * w,), float("inf"), device=instances.device)
                            for m in instances])  # (K, H·W)
    d1, d2 = distance.topk(2, dim=0, largest=False).values
    border = w0 * torch.exp(-((d1 + d2) ** 2) / (2 * sigma ** 2))
    background = ~instances.bool().any(0).reshape(-1)
    weight = torch.ones(h * w, device=instances.device) if class_weight is None else class_weight.reshape(-1).float()
    return (weight + border * background).reshape(h, w)


def mask_targets(gt_masks: torch.Tensor, boxes: torch.Tensor, matched: torch.Tensor, size: int) -> torch.Tensor:
    """The M×M target of each RoI: its matched object's mask (``gt_masks[matched[k]]``, (H, W)) cut out
    at the RoI's box and resampled to ``size`` × ``size`` by RoIAlign (soft values at the edges)."""
    from torchvision.ops import roi_align  # the same bilinear sampling the mask head's features get

    rois = torch.cat([matched[:, None].to(boxes), boxes], dim=1)
    return roi_align(gt_masks[:, None].to(boxes), rois, (size, size), spatial_scale=1.0)[:, 0]


def mask_loss(mask_logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mask R-CNN's mask loss: L_mask = mean over RoIs k and pixels of BCE(σ(m_k[c_k]), t_k).

    ``mask_logits`` (K, C, M, M) holds one mask per class for each of the K positive RoIs; only the mask
    of the RoI's own class c_k = ``labels[k]`` is scored against its target t_k (``targets``, (K, M, M)),
    with a per-pixel sigmoid: classes do not compete for pixels, the box head already chose the class.
    """
    if targets.numel() == 0:
        return mask_logits.sum() * 0
    own_class = mask_logits[torch.arange(len(labels), device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(own_class, targets)
