"""Trainer of Part II's detection recipes: ``detector`` (Faster R-CNN) and ``maskrcnn`` (Mask R-CNN).

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
from coursekit.engine.detection import evaluate_detector, train_detector
from coursekit.models import count_parameters, get_model
from coursekit.recipes import RECIPES, TrainConfig, TrainResult

IMAGE_SIZE = 64
TEST_SEED_OFFSET = 1000  # test scenes: ShapesDetection(n_test, IMAGE_SIZE, seed + TEST_SEED_OFFSET)


def test_set(n_test: int, seed: int = 0) -> ShapesDetection:
    """The recipes' held-out scenes (the checkpoint's sidecar records ``n_test`` and ``seed``)."""
    return ShapesDetection(n_test, IMAGE_SIZE, seed=seed + TEST_SEED_OFFSET)


def train_detection_recipe(config: TrainConfig) -> TrainResult:
    """Build the recipe's detector, train it from scratch on the shapes scenes, measure its AP."""
    arch = {"num_classes": ShapesDetection.num_classes, "image_size": IMAGE_SIZE}
    model = get_model(RECIPES[config.recipe].builder, **arch)
    start = time.perf_counter()
    history = train_detector(model, ShapesDetection(config["n_train"], IMAGE_SIZE, seed=config.seed),
                             epochs=config["epochs"], lr=config["lr"], batch_size=config["batch_size"],
                             device=config.device, progress=config.progress, seed=config.seed,
                             desc=config.recipe)
    seconds = time.perf_counter() - start
    metrics = evaluate_detector(model, test_set(config["n_test"], config.seed))
    metrics.update(train_seconds=seconds, parameters=float(count_parameters(model)),
                   n_train=float(config["n_train"]), n_test=float(config["n_test"]))
    return TrainResult(model.cpu(), arch, metrics, history)
