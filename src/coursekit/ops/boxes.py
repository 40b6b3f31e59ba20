"""Box operations of a two-stage detector, written to be read (torchvision.ops does the same, faster).

Boxes are ``(x1, y1, x2, y2)`` in pixel edges: a box from x1 = 2 to x2 = 5 is 3 pixels wide.

* ``box_area``, ``box_iou``: IoU(A, B) = |A ∩ B| / |A ∪ B|, the overlap score of everything below.
* ``encode_boxes`` / ``decode_boxes``: Faster R-CNN's regression targets (Ren et al., 2015). A box is
  described relative to a reference box (an anchor or a proposal) of centre (x_a, y_a) and size
  (w_a, h_a):  t_x = (x − x_a) / w_a,  t_y = (y − y_a) / h_a,  t_w = log(w / w_a),  t_h = log(h / h_a),
  each multiplied by a weight (torchvision: 1 for the RPN, (10, 10, 5, 5) for the box head), which
  scales the targets to roughly unit variance.
* ``grid_anchors``: the anchors of one feature map, every base anchor shifted to every cell.
* ``nms`` / ``batched_nms``: greedy non-maximum suppression, keep the best box, drop the others that
  overlap it by more than a threshold, repeat.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

# torchvision's clip on t_w, t_h when decoding: no box grows more than 1000/16 times its reference
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def box_area(boxes: Tensor) -> Tensor:
    """Area (x2 − x1)(y2 − y1) of each box of an (N, 4) tensor."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of every pair: (N, 4) × (M, 4) → (N, M)."""
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])       # (N, M, 2)
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])   # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)                              # no overlap → 0
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter
    return inter / union


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def encode_boxes(boxes: Tensor, reference: Tensor,
                 weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Regression targets (t_x, t_y, t_w, t_h) of ``boxes`` relative to ``reference`` boxes (both (N, 4))."""
    wx, wy, ww, wh = weights
    x, y, w, h = _centre_size(boxes)
    xa, ya, wa, ha = _centre_size(reference)
    return torch.stack([wx * (x - xa) / wa, wy * (y - ya) / ha,
                        ww * torch.log(w / wa), wh * torch.log(h / ha)], dim=1)


def decode_boxes(deltas: Tensor, reference: Tensor,
                 weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Invert ``encode_boxes``: the boxes that ``deltas`` (N, 4) describe relative to ``reference``."""
    wx, wy, ww, wh = weights
    xa, ya, wa, ha = _centre_size(reference)
    x = deltas[:, 0] / wx * wa + xa
    y = deltas[:, 1] / wy * ha + ya
    w = torch.exp((deltas[:, 2] / ww).clamp(max=BBOX_XFORM_CLIP)) * wa
    h = torch.exp((deltas[:, 3] / wh).clamp(max=BBOX_XFORM_CLIP)) * ha
    return torch.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h], dim=1)


def base_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """Anchors centred on (0, 0): for each aspect ratio a = h / w and size s, a box of area s² with
    h = s·√a and w = s / √a (rounded to whole pixels, as torchvision does). Returns (R·S, 4)."""
    sizes_t = torch.as_tensor(sizes, dtype=torch.float32)
    h_ratio = torch.sqrt(torch.as_tensor(aspect_ratios, dtype=torch.float32))
    w_ratio = 1 / h_ratio
    ws = (w_ratio[:, None] * sizes_t[None, :]).reshape(-1)
    hs = (h_ratio[:, None] * sizes_t[None, :]).reshape(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def grid_anchors(feature_size: tuple[int, int], image_size: tuple[int, int], sizes: Sequence[float],
                 aspect_ratios: Sequence[float]) -> Tensor:
    """All anchors of one feature map of ``feature_size`` = (rows, cols) for an image of (H, W).

    A cell (i, j) of a map with stride (s_y, s_x) = image // feature is at (j·s_x, i·s_y) in the image,
    and every base anchor is shifted there (torchvision places them at the cell's top-left corner).
    Order: cell by cell (row-major), and within a cell the base anchors. Returns (rows·cols·A, 4).
    """
    rows, cols = feature_size
    stride_y, stride_x = image_size[0] // rows, image_size[1] // cols
    shift_y, shift_x = torch.meshgrid(torch.arange(rows, dtype=torch.float32) * stride_y,
                                      torch.arange(cols, dtype=torch.float32) * stride_x, indexing="ij")
    shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=-1).reshape(-1, 1, 4)
    return (shifts + base_anchors(sizes, aspect_ratios)[None]).reshape(-1, 4)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, by decreasing score.

    Take the highest-scoring box left, keep it, and discard every remaining box whose IoU with it
    exceeds ``iou_threshold``; repeat until no box is left. O(N²) and plain: torchvision.ops.nms is
    the fast version of the same rule.
    """
    order = torch.argsort(scores, descending=True)
    ious = box_iou(boxes, boxes)
    keep = []
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= ious[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """NMS separately within each class (a circle never suppresses a square); kept indices by score."""
    keep = [torch.nonzero(labels == c).flatten()[nms(boxes[labels == c], scores[labels == c], iou_threshold)]
            for c in torch.unique(labels)]
    if not keep:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    keep = torch.cat(keep)
    return keep[torch.argsort(scores[keep], descending=True)]


__all__ = ["BBOX_XFORM_CLIP", "base_anchors", "batched_nms", "box_area", "box_iou", "decode_boxes",
           "encode_boxes", "grid_anchors", "nms"]
