"""Trainer of Part II's semantic segmentation recipes: ``fcn32s``, ``fcn16s``, ``fcn8s``, ``segnet``, ``unet``.

All five train on the same shapes scenes (2,000 train, 200 val, 500 test, 64×64; four classes) with
the same budget (epochs, batch size, learning-rate schedule, cross-entropy unless ``--loss ce+dice``), so
their metrics compare.
Each reports, on the test split and from one dataset-level confusion matrix: ``miou``,
``pixel_accuracy``, ``dice`` (mean over classes), ``iou_<class>``, plus ``parameters`` and
``train_seconds`` (wall time of training on this machine).
"""

from __future__ import annotations

from coursekit.data import Split, load_shapes_split
from coursekit.engine import evaluate, train_segmentation
from coursekit.models import count_parameters, get_model
from coursekit.recipes import RECIPES, TrainConfig, TrainResult


def shapes_split(config: TrainConfig) -> Split:
    """The recipes' shapes split (sizes from the config's settings) for ``config.seed``."""
    return load_shapes_split(config["n_train"], config["n_val"], config["n_test"], config["size"], seed=config.seed)


def train_segmenter(config: TrainConfig, split: Split | None = None) -> TrainResult:
    """Build the recipe's model, train it on the shapes split with the shared budget, test it."""
    split = split if split is not None else shapes_split(config)
    arch = {"num_classes": len(split.classes), **config["arch"]}
    model = get_model(RECIPES[config.recipe].builder, **arch)
    history = train_segmentation(model, split, epochs=config["epochs"], lr=config["lr"],
                                 batch_size=config["batch_size"], loss=config["loss"], device=config.device, amp=True,
                                 progress=config.progress, seed=config.seed, desc=config.recipe)
    cm = evaluate(model, split.x_test, split.y_test, len(split.classes), device=config.device)
    metrics = cm.summary(split.classes)
    metrics.update(parameters=float(count_parameters(model)), train_seconds=history.last["train_seconds"])
    return TrainResult(model, arch, metrics, history)
