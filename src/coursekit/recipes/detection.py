"""Recipes for Part II's detection chapters: ``detector`` (Faster R-CNN) and ``maskrcnn`` (Mask R-CNN).

Both train from scratch (no pretrained weights) on 64×64 shapes scenes, the training scenes from
seed ``seed``, the test scenes from seed ``seed + 1000``, and report COCO-style AP on the test scenes:
``box_ap50`` and ``box_ap`` (mean over IoU 0.5:0.95), plus ``mask_ap50`` and ``mask_ap`` for
``maskrcnn``, and ``train_seconds``. The defaults (1,000 scenes; 1,500 steps of 8 for ``detector``,
2,000 for ``maskrcnn``) take about 0.15–0.2 s a step on one idle CPU core, so 4–7 minutes (far longer
on a busy machine), and about 75 s (``detector``) and 110 s (``maskrcnn``) of training on an H100 GPU;
``--quick`` trains a few steps on a few scenes (seconds).

The shipped checkpoint ``checkpoints/maskrcnn.pt`` is made by

    coursekit train maskrcnn --out checkpoints/maskrcnn.pt

(its sidecar records the exact command, seed, versions and metrics).
"""

from __future__ import annotations

import time

from coursekit.data import ShapesDetection
from coursekit.device import get_device, quick_mode, seed_everything
from coursekit.dettrain import evaluate_detector, train_detector
from coursekit.models.detection import count_parameters, detector, maskrcnn
from coursekit.recipes import TrainConfig, TrainResult, recipe

IMAGE_SIZE = 64
TEST_SEED_OFFSET = 1000  # test scenes: ShapesDetection(n_test, IMAGE_SIZE, seed + TEST_SEED_OFFSET)
_FULL = {"detector": dict(n_train=1000, n_test=200, epochs=12, lr=2e-3, batch_size=8),
         "maskrcnn": dict(n_train=1000, n_test=200, epochs=16, lr=2e-3, batch_size=8)}
_QUICK = dict(n_train=16, n_test=8, epochs=1, lr=2e-3, batch_size=8)


def settings(name: str, config: TrainConfig) -> dict:
    """Data sizes, epochs, lr and batch size: the command line's, else the recipe's (quick-sized)."""
    base = _QUICK if (config.quick or quick_mode()) else _FULL[name]
    return {**base, **{k: config.get(k, base[k]) for k in ("epochs", "lr", "batch_size")}}


def test_set(n_test: int, seed: int = 0) -> ShapesDetection:
    """The recipes' held-out scenes (the checkpoint's sidecar records ``n_test`` and ``seed``)."""
    return ShapesDetection(n_test, IMAGE_SIZE, seed=seed + TEST_SEED_OFFSET)


def _run(name: str, build, config: TrainConfig) -> TrainResult:
    if config.data not in ("default", "shapes"):
        raise ValueError(f"{name} trains on the shapes scenes only: use --data default (or shapes)")
    s = settings(name, config)
    device = get_device(config.device)
    arch = {"num_classes": ShapesDetection.num_classes, "image_size": IMAGE_SIZE}
    seed_everything(config.seed)
    model = build(**arch)
    start = time.perf_counter()
    history = train_detector(model, ShapesDetection(s["n_train"], IMAGE_SIZE, seed=config.seed),
                             epochs=s["epochs"], lr=s["lr"], batch_size=s["batch_size"], device=device,
                             progress=config.progress, seed=config.seed, desc=name)
    seconds = time.perf_counter() - start
    metrics = evaluate_detector(model, test_set(s["n_test"], config.seed))
    metrics.update(train_seconds=seconds, parameters=float(count_parameters(model)),
                   n_train=float(s["n_train"]), n_test=float(s["n_test"]))
    return TrainResult(model.cpu(), arch, metrics, history)


@recipe("detector", help="Faster R-CNN with a small FPN backbone, from scratch, on 64×64 shapes scenes",
        build=lambda **config: detector(**config))
def train_faster_rcnn(config: TrainConfig) -> TrainResult:
    return _run("detector", detector, config)


@recipe("maskrcnn", help="Mask R-CNN with a small FPN backbone, from scratch, on 64×64 shapes scenes",
        build=lambda **config: maskrcnn(**config))
def train_mask_rcnn(config: TrainConfig) -> TrainResult:
    return _run("maskrcnn", maskrcnn, config)
