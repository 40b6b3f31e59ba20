"""Detection metrics (against an independent implementation and hand-computed cases), the Faster and
Mask R-CNN builders, their recipes, and the shipped Mask R-CNN checkpoint."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.checkpoint import load_trained
from coursekit.data import ShapesDetection, detection_collate
from coursekit.device import seeded
from coursekit.engine.detection import clean_targets, detection_loss, evaluate_detector, predict, train_detector
from coursekit.metrics.detection import average_precision, coco_summary, detection_ap, mask_iou
from coursekit.models.detection import detector, maskrcnn
from coursekit.recipes import RECIPES
from coursekit.recipes.detection import IMAGE_SIZE
from coursekit.recipes.detection import test_set as recipe_test_set  # (a "test_*" name pytest would collect)

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "maskrcnn.pt"
THRESHOLDS = [0.5 + 0.05 * k for k in range(10)]


# ------------------------------------------------------------------------------------------------
# An independent AP: scalar IoUs, one global list of detections, the precision envelope evaluated
# by brute force at each recall level.

def _iou_box(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _iou_mask(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 0.0


def reference_ap(predictions, targets, kind, threshold):
    classes = sorted({int(c) for t in targets for c in t["labels"]})
    aps = []
    for c in classes:
        gts = {i: [k for k in range(len(t["labels"])) if int(t["labels"][k]) == c] for i, t in enumerate(targets)}
        n_gt = sum(len(v) for v in gts.values())
        dets = [(float(p["scores"][k]), i, k) for i, p in enumerate(predictions)
                for k in range(len(p["labels"])) if int(p["labels"][k]) == c]
        dets.sort(key=lambda d: -d[0])
        used = {i: set() for i in gts}
        tp = []
        for _, i, k in dets:
            best, best_j = -1.0, None
            for j in gts[i]:
                if j in used[i]:
                    continue
                if kind == "box":
                    iou = _iou_box(predictions[i]["boxes"][k].tolist(), targets[i]["boxes"][j].tolist())
                else:
                    iou = _iou_mask(predictions[i]["masks"][k].numpy() > 0.5, targets[i]["masks"][j].numpy() > 0)
                if iou >= threshold and iou > best:
                    best, best_j = iou, j
            if best_j is not None:
                used[i].add(best_j)
            tp.append(best_j is not None)
        precision, recall, hits = [], [], 0
        for n, hit in enumerate(tp, start=1):
            hits += hit
            precision.append(hits / n)
            recall.append(hits / n_gt)
        levels = [r / 100 for r in range(101)]
        aps.append(np.mean([max([p for p, q in zip(precision, recall) if q >= r - 1e-12], default=0.0)
                            for r in levels]))
    return float(np.mean(aps))


def _random_case(seed, n_images=6, size=24):
    """Noisy, duplicated and misclassified detections of random scenes: boxes and masks."""
    g = torch.Generator().manual_seed(seed)
    predictions, targets = [], []
    for _ in range(n_images):
        n = int(torch.randint(1, 5, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * size / 2
        boxes = torch.cat([xy, xy + 3 + torch.rand(n, 2, generator=g) * size / 2], 1)
        labels = torch.randint(1, 4, (n,), generator=g)
        masks = torch.zeros(n, size, size, dtype=torch.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes.round().int().tolist()):
            masks[k, y1:y2, x1:x2] = 1
        targets.append({"boxes": boxes, "labels": labels, "masks": masks})
        m = n + 3
        pick = torch.randint(0, n, (m,), generator=g)
        p_boxes = boxes[pick] + torch.randn(m, 4, generator=g) * 1.5
        p_boxes[:, 2:] = torch.maximum(p_boxes[:, 2:], p_boxes[:, :2] + 1)
        p_labels = torch.where(torch.rand(m, generator=g) < 0.8, labels[pick], torch.randint(1, 4, (m,), generator=g))
        p_masks = (masks[pick].float() * 0.8 + torch.rand(m, size, size, generator=g) * 0.4)[:, None]
        predictions.append({"boxes": p_boxes, "labels": p_labels, "scores": torch.rand(m, generator=g),
                            "masks": p_masks})
    return predictions, targets


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["box", "mask"])
def test_ap_matches_independent_implementation(seed, kind):
    predictions, targets = _random_case(seed)
    ap = detection_ap(predictions, targets, kind=kind)
    assert list(ap) == pytest.approx(THRESHOLDS)
    for t in THRESHOLDS:
        assert ap[round(t, 2)] == pytest.approx(reference_ap(predictions, targets, kind, t), abs=1e-9)


def _one_class(pred_boxes, scores, gt_boxes):
    pred = {"boxes": torch.tensor(pred_boxes, dtype=torch.float32), "scores": torch.tensor(scores),
            "labels": torch.ones(len(pred_boxes), dtype=torch.int64)}
    target = {"boxes": torch.tensor(gt_boxes, dtype=torch.float32), "labels": torch.ones(len(gt_boxes), dtype=torch.int64)}
    return [pred], [target]


def test_ap_hand_computed():
    gt = [[0, 0, 10, 10], [20, 20, 30, 30]]
    # perfect: AP 1 at every threshold
    assert set(detection_ap(*_one_class(gt, [0.9, 0.8], gt)).values()) == {1.0}
    # TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 → 51 levels at 1, 50 at 2/3
    ap = detection_ap(*_one_class([gt[0], [40, 40, 50, 50], gt[1]], [0.9, 0.8, 0.7], gt))
    assert ap[0.5] == pytest.approx((51 + 50 * 2 / 3) / 101)
    # a duplicate is a false positive, even with a high score, and a miss caps the recall
    ap = detection_ap(*_one_class([gt[0], gt[0]], [0.9, 0.8], gt))
    assert ap[0.5] == pytest.approx(51 / 101)
    # IoU 0.62: a true positive at 0.50, 0.55, 0.60 only
    ap = detection_ap(*_one_class([[0, 0, 10, 6.2]], [0.9], [[0, 0, 10, 10]]))
    assert [ap[t] for t in sorted(ap)] == [1.0] * 3 + [0.0] * 7
    assert coco_summary(*_one_class([[0, 0, 10, 6.2]], [0.9], [[0, 0, 10, 10]]))["box_ap"] == pytest.approx(0.3)
    # no detections: 0; the wrong class: 0
    assert detection_ap(*_one_class([], [], gt))[0.5] == 0.0
    pred, target = _one_class(gt, [0.9, 0.8], gt)
    pred[0]["labels"] = torch.tensor([2, 2])
    assert detection_ap(pred, target)[0.5] == 0.0


def test_ap_counts_at_most_max_detections_per_image_and_class():
    # 100 false positives outscore the one true positive: COCO's 100 per image drop it, 101 keep it
    boxes = [[40.0 + k / 10, 40, 50, 50] for k in range(100)] + [[0, 0, 10, 10]]
    scores = [0.9 - k / 1000 for k in range(100)] + [0.1]
    pred, target = _one_class(boxes, scores, [[0, 0, 10, 10]])
    assert detection_ap(pred, target, iou_thresholds=[0.5])[0.5] == 0.0
    assert detection_ap(pred, target, iou_thresholds=[0.5], max_detections=101)[0.5] == pytest.approx(1 / 101)


def test_ap_averages_over_classes_with_ground_truth_only():
    target = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([1, 2])}
    pred = {"boxes": torch.tensor([[0.0, 0, 10, 10], [40, 40, 50, 50]]), "scores": torch.tensor([0.9, 0.8]),
            "labels": torch.tensor([1, 3])}  # class 1 perfect, class 2 missed, class 3 has no ground truth
    assert detection_ap([pred], [target])[0.5] == pytest.approx(0.5)


def test_mask_iou_and_mask_ap():
    a = torch.zeros(2, 8, 8, dtype=torch.bool)
    a[0, :4, :4] = True  # 16 pixels
    a[1, :2, :2] = True  # 4 pixels, inside the first
    b = torch.zeros(1, 8, 8, dtype=torch.bool)
    b[0, 2:6, 2:6] = True  # overlaps a[0] by 4 pixels
    torch.testing.assert_close(mask_iou(a, b), torch.tensor([[4 / 28], [0.0]], dtype=torch.float64))
    target = {"boxes": torch.tensor([[0.0, 0, 4, 4]]), "labels": torch.tensor([1]), "masks": a[:1].to(torch.uint8)}
    pred = {"boxes": torch.tensor([[0.0, 0, 4, 4]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1]),
            "masks": a[1:].float()[:, None]}  # right box, mask IoU 0.25
    assert detection_ap([pred], [target], kind="box")[0.5] == 1.0
    assert detection_ap([pred], [target], kind="mask")[0.5] == 0.0


def test_average_precision_edge_cases():
    assert np.isnan(average_precision(np.zeros(0), np.zeros(0, bool), 0))
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    assert average_precision(np.array([0.5]), np.array([True]), 1) == 1.0


# ------------------------------------------------------------------------------------------------
# Models

def _batch(n=4, size=64, seed=0):
    return detection_collate([ShapesDetection(n, size, seed)[i] for i in range(n)])


@pytest.mark.parametrize("build", [detector, maskrcnn])
def test_models_train_and_predict_at_image_size(build):
    torch.manual_seed(0)
    model = build()
    assert model.transform.min_size == (64,) and model.transform.max_size == 64
    images, targets = _batch()
    model.train()
    losses = model(images, targets)
    expected = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert expected <= set(losses) and all(torch.isfinite(v) for v in losses.values())
    assert ("loss_mask" in losses) == (build is maskrcnn)
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 4 and out[0]["boxes"].shape[1] == 4
    if build is maskrcnn:
        assert out[0]["masks"].shape[1:] == (1, 64, 64)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000  # small, so the checkpoint is small


def test_no_pretrained_weights():
    with pytest.raises(ValueError, match="from scratch"):
        maskrcnn(weights="DEFAULT")
    with pytest.raises(ValueError, match="from scratch"):
        detector(weights_backbone="DEFAULT")


def test_clean_targets_drops_degenerate_boxes():
    t = {"boxes": torch.tensor([[1.0, 1, 5, 5], [3, 3, 3, 8], [2, 2, 6, 2]]), "labels": torch.tensor([1, 2, 3]),
         "masks": torch.zeros(3, 8, 8, dtype=torch.uint8)}
    (out,) = clean_targets([t])
    assert out["labels"].tolist() == [1] and out["masks"].shape == (1, 8, 8)


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = detector()
    data = ShapesDetection(8, 64, seed=0)
    batch = detection_collate([data[i] for i in range(8)])
    model.train()
    with torch.no_grad():
        before = float(detection_loss(model, batch))
    train_detector(model, data, epochs=3, lr=2e-3, batch_size=4, warmup=2, device="cpu")
    model.train()
    with torch.no_grad():
        assert float(detection_loss(model, batch)) < before


RECIPE_KINDS = {"detector": ["box"], "maskrcnn": ["box", "mask"]}


@pytest.mark.parametrize("name", sorted(RECIPE_KINDS))
def test_recipe_ap_is_that_of_its_models_predictions(name, quick_recipe):
    """The reported AP, recomputed by the independent ``reference_ap`` from the model's own detections."""
    result = quick_recipe(name)
    config = RECIPES[name].configure(quick=True)
    images, targets = zip(*recipe_test_set(config["n_test"], seed=0))
    predictions = predict(result.model, images)
    assert sum(len(p["scores"]) for p in predictions) > 0, "nothing detected: the check below would be 0 = 0"
    for kind in RECIPE_KINDS[name]:
        ap = [reference_ap(predictions, targets, kind, t) for t in THRESHOLDS]
        assert result.metrics[f"{kind}_ap50"] == pytest.approx(ap[0], abs=1e-9)
        assert result.metrics[f"{kind}_ap"] == pytest.approx(np.mean(ap), abs=1e-9)


def _training_loss(model, n=16):
    """The detection loss (train mode: RPN and heads) on the recipes' first ``n`` training scenes."""
    data = ShapesDetection(n, IMAGE_SIZE, seed=0)
    model = copy.deepcopy(model).train()  # train mode updates BatchNorm statistics: keep the original as it is
    with torch.no_grad(), seeded(0):  # the heads sample proposals at random
        return float(detection_loss(model, detection_collate([data[i] for i in range(n)])))


@pytest.mark.parametrize("name", sorted(RECIPE_KINDS))
def test_recipe_lowers_the_loss_of_its_untrained_model(name, quick_recipe):
    result = quick_recipe(name)
    with seeded(0):
        untrained = RECIPES[name].build(**result.config)
    assert _training_loss(result.model) < 0.9 * _training_loss(untrained)


@pytest.mark.parametrize("name", sorted(RECIPE_KINDS))
def test_recipe_config_rebuilds_the_same_model(name, quick_recipe):
    result = quick_recipe(name)
    rebuilt = RECIPES[name].build(**json.loads(json.dumps(result.config)))  # as a sidecar stores it
    rebuilt.load_state_dict(result.model.state_dict())
    images = [image for image, _ in ShapesDetection(2, IMAGE_SIZE, seed=5)]
    for ours, theirs in zip(predict(rebuilt, images), predict(result.model, images)):
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


# ------------------------------------------------------------------------------------------------
# The shipped checkpoint

def test_checkpoint_reproduces_its_metrics():
    model, meta = load_trained("maskrcnn")
    assert meta["name"] == "maskrcnn" and meta["command"].startswith("coursekit train maskrcnn")
    assert CHECKPOINT.stat().st_size < 5_000_000
    n_test = int(meta["metrics"]["n_test"])
    metrics = evaluate_detector(model, recipe_test_set(n_test, meta["seed"]))
    for key in ("box_ap50", "box_ap", "mask_ap50", "mask_ap"):
        assert metrics[key] == pytest.approx(meta["metrics"][key], abs=0.01), key
    assert meta["metrics"]["mask_ap50"] > 0.5  # a useful model, not just a loadable one


# ------------------------------------------------------------------------------------------------
# CUDA

@pytest.mark.gpu
@pytest.mark.parametrize("build", [detector, maskrcnn])
def test_models_trained_on_cuda_compute_what_the_cpu_does(build):
    torch.manual_seed(0)
    model = build()
    history = train_detector(model, ShapesDetection(16, 64, seed=0), epochs=2, batch_size=8, warmup=2, device="cuda")
    assert next(model.parameters()).device.type == "cuda" and np.isfinite(history["train_loss"]).all()
    images, _ = detection_collate(list(ShapesDetection(4, 64, seed=1)))
    model.eval()
    with torch.no_grad():
        x = model.transform(images)[0].tensors  # normalised and batched as the detector sees them
        on_cuda = model.backbone(x.cuda())
        on_cpu = copy.deepcopy(model).cpu().backbone(x)
    # float32 on both devices; cuDNN may run the convolutions in TF32 (10-bit mantissa): 1 % of the range
    for level in on_cpu:
        scale = float(on_cpu[level].abs().max())
        torch.testing.assert_close(on_cuda[level].cpu(), on_cpu[level], rtol=0, atol=0.01 * scale)


@pytest.mark.gpu
def test_maskrcnn_recipe_on_cuda_reports_the_ap_its_model_has_on_cpu():
    """The recipe trains and measures on CUDA (bfloat16 autocast in training, float32 in evaluation); the
    model it hands back (on the CPU) must score the same AP there."""
    from coursekit.recipes import train_recipe

    result = train_recipe("maskrcnn", quick=True, device="cuda", epochs=30)  # 60 steps: AP well above 0
    assert next(result.model.parameters()).device.type == "cpu"
    assert result.metrics["box_ap50"] > 0.05, "too little training for the comparison to mean anything"
    on_cpu = evaluate_detector(result.model, recipe_test_set(int(result.metrics["n_test"]), seed=0))
    for key in ("box_ap50", "box_ap", "mask_ap50", "mask_ap"):
        # a borderline detection may flip across the score threshold or NMS on another device
        assert on_cpu[key] == pytest.approx(result.metrics[key], abs=0.03), key
