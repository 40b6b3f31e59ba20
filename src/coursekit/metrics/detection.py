"""Average precision of detections, for boxes and for instance masks, as COCO computes it.

For one class and one IoU threshold t, all detections of the class over the whole data set are
sorted by score. Going down the list, a detection is a true positive when it overlaps a ground-truth
object of its class, in its image, not matched yet, with IoU >= t (it takes the best such object);
otherwise it is a false positive. After the k-th detection

    precision_k = TP_k / k,        recall_k = TP_k / (number of ground-truth objects).

The precision envelope p̂(r) = max_{k: recall_k >= r} precision_k removes the zig-zags, and AP is its
mean over the 101 recall levels r = 0, 0.01, ..., 1 (COCO's interpolation; p̂(r) = 0 beyond the
highest recall reached). AP averages over the classes that have ground truth; ``AP50`` uses t = 0.5
and ``AP`` (COCO's headline number) averages over t = 0.50, 0.55, ..., 0.95. Mask AP is the same with
the IoU of binary masks instead of boxes. Like COCO's default, at most ``max_detections`` (100)
detections per image and class count; unlike COCO there are no "crowd" regions or area ranges.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from coursekit.ops.boxes import box_iou

IOU_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2).tolist())
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


def mask_iou(masks1: torch.Tensor, masks2: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of binary masks: (N, H, W) × (M, H, W) → (N, M); empty ∪ empty gives 0."""
    a = masks1.flatten(1).double()
    b = masks2.flatten(1).double()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def match_detections(ious: torch.Tensor, iou_threshold: float) -> np.ndarray:
    """Greedy matching of one image's detections (rows, sorted by decreasing score) to its ground
    truth (columns): each detection takes the unmatched ground truth of highest IoU >= threshold (on an
    exact tie the first column; COCO's loop takes the last, which can only change which one is taken).
    Returns a boolean array: is detection i a true positive?"""
    ious = ious.detach().cpu().double().numpy()
    taken = np.zeros(ious.shape[1], dtype=bool)
    tp = np.zeros(ious.shape[0], dtype=bool)
    for i in range(ious.shape[0]):
        candidates = np.where(~taken & (ious[i] >= iou_threshold), ious[i], -1.0)
        if ious.shape[1] and candidates.max() >= 0:
            j = int(candidates.argmax())
            taken[j] = True
            tp[i] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """COCO's 101-point interpolated AP of one class from its detections' ``scores`` and ``tp`` flags."""
    if num_gt == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")  # stable, as COCO
    tp = np.asarray(tp, dtype=np.float64)[order]
    tp_cum = np.cumsum(tp)
    precision = tp_cum / np.arange(1, len(tp) + 1)
    recall = tp_cum / num_gt
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or beyond
    # for each recall level, the first detection reaching it; levels never reached get precision 0
    index = np.searchsorted(recall, RECALL_LEVELS, side="left")
    return float(np.append(envelope, 0.0)[index].mean())


def _ious(pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], kind: str) -> torch.Tensor:
    if kind == "box":
        return box_iou(pred["boxes"].double(), target["boxes"].double())
    pm = pred["masks"]
    if pm.dim() == 4:  # torchvision's (N, 1, H, W) soft masks
        pm = pm[:, 0]
    return mask_iou(pm > 0.5 if pm.is_floating_point() else pm.bool(), target["masks"].bool())


def detection_ap(predictions: Sequence[Mapping[str, torch.Tensor]], targets: Sequence[Mapping[str, torch.Tensor]],
                 kind: str = "box", iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
                 max_detections: int = 100) -> dict[float, float]:
    """AP at each IoU threshold (mean over classes with ground truth) for ``kind`` = "box" or "mask".

    ``predictions[i]`` has ``boxes``, ``scores``, ``labels`` (and ``masks`` for masks: (N, H, W) or
    torchvision's (N, 1, H, W) probabilities, thresholded at 0.5); ``targets[i]`` has ``boxes``,
    ``labels`` (and ``masks``). Returns ``{threshold: AP}``.
    """
    if kind not in ("box", "mask"):
        raise ValueError(f"kind must be 'box' or 'mask', got {kind!r}")
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    classes = sorted({int(c) for t in targets for c in t["labels"].tolist()})
    # per class and threshold: scores, tp flags; ground-truth counts per class
    scores: dict[int, list[np.ndarray]] = {c: [] for c in classes}
    flags: dict[tuple[int, float], list[np.ndarray]] = {(c, t): [] for c in classes for t in iou_thresholds}
    num_gt = {c: 0 for c in classes}
    for pred, target in zip(predictions, targets):
        keep = torch.argsort(pred["scores"].detach().cpu(), descending=True, stable=True)
        pred = {k: v.detach().cpu()[keep] for k, v in pred.items() if k in ("boxes", "scores", "labels", "masks")}
        target = {k: v.detach().cpu() for k, v in target.items()}
        for c in classes:
            p = pred["labels"] == c
            g = target["labels"] == c
            num_gt[c] += int(g.sum())
            if not p.any():
                continue
            sub_pred = {k: v[p][:max_detections] for k, v in pred.items()}  # COCO: per image and class
            sub_target = {k: v[g] for k, v in target.items() if k in ("boxes", "labels", "masks")}
            ious = _ious(sub_pred, sub_target, kind)  # rows already sorted by score
            scores[c].append(sub_pred["scores"].double().numpy())
            for t in iou_thresholds:
                flags[(c, t)].append(match_detections(ious, t))
    result = {}
    for t in iou_thresholds:
        aps = []
        for c in classes:
            s = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
            f = np.concatenate(flags[(c, t)]) if flags[(c, t)] else np.zeros(0, dtype=bool)
            aps.append(average_precision(s, f, num_gt[c]))
        result[float(t)] = float(np.mean(aps)) if aps else float("nan")
    return result


def coco_summary(predictions, targets, kind: str = "box") -> dict[str, float]:
    """``{kind_ap50, kind_ap75, kind_ap}``: AP at IoU 0.5, 0.75 and the mean over 0.5:0.95."""
    ap = detection_ap(predictions, targets, kind=kind)
    return {f"{kind}_ap50": ap[0.5], f"{kind}_ap75": ap[0.75], f"{kind}_ap": float(np.mean(list(ap.values())))}


__all__ = ["IOU_THRESHOLDS", "average_precision", "coco_summary", "detection_ap", "mask_iou",
           "match_detections"]
