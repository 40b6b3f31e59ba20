"""Recipes for Part II's semantic segmentation: ``fcn32s``, ``fcn16s``, ``fcn8s``, ``segnet``, ``unet``.

All five train on the same shapes scenes (2,000 train, 200 val, 500 test, 64×64; four classes) with
the same budget (epochs, batch size, learning-rate schedule, cross-entropy), so their metrics compare.
Each reports, on the test split and from one dataset-level confusion matrix: ``miou``,
``pixel_accuracy``, ``dice`` (mean over classes), ``iou_<class>``, plus ``parameters`` and
``train_seconds`` (wall time of training on this machine).
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from coursekit.data import CLASSES
from coursekit.device import get_device, quick_mode, seed_everything
from coursekit.models.fcn import fcn8s, fcn16s, fcn32s
from coursekit.models.segblocks import count_parameters
from coursekit.models.segnet import segnet
from coursekit.models.unet import unet
from coursekit.recipes import TrainConfig, TrainResult, recipe
from coursekit.segtrain import SegSplit, evaluate, load_shapes_split, train_segmentation

# The shared budget (--epochs, --lr, --batch-size override it).
DEFAULTS = dict(epochs=8, lr=5e-3, batch_size=32)
DATA = dict(n_train=2000, n_val=200, n_test=500, size=64)
QUICK_DATA = dict(n_train=64, n_val=16, n_test=32, size=64)
# Architecture arguments of each builder (all models stay under 250k parameters: checkpoints < 1 MB).
ARCHS: dict[str, dict[str, Any]] = {
    "fcn32s": {}, "fcn16s": {}, "fcn8s": {}, "segnet": {}, "unet": {"base_width": 10},
}
BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fcn32s": fcn32s, "fcn16s": fcn16s, "fcn8s": fcn8s, "segnet": segnet, "unet": unet,
}


def is_quick(config: TrainConfig) -> bool:
    """``--quick`` or COURSEKIT_QUICK=1: a tiny split and one epoch."""
    return config.quick or quick_mode()


def shapes_split(config: TrainConfig) -> SegSplit:
    """The recipes' shapes split (``DATA``, or ``QUICK_DATA`` in quick mode) for ``config.seed``."""
    if config.data not in ("default", "shapes"):
        raise ValueError(f"unknown data {config.data!r} for segmentation: use default (the shapes scenes)")
    return load_shapes_split(**(QUICK_DATA if is_quick(config) else DATA), seed=config.seed)


def train_named(name: str, config: TrainConfig, split: SegSplit | None = None) -> TrainResult:
    """Build model ``name``, train it on the shapes split with the shared budget, test it."""
    split = split if split is not None else shapes_split(config)
    epochs = config.get("epochs", 1 if is_quick(config) else DEFAULTS["epochs"])
    arch = {"num_classes": len(CLASSES), **ARCHS[name]}
    seed_everything(config.seed)
    model = BUILDERS[name](**arch)
    device = get_device(config.device)
    history = train_segmentation(model, split, epochs=epochs, lr=config.get("lr", DEFAULTS["lr"]),
                                 batch_size=config.get("batch_size", DEFAULTS["batch_size"]), device=device,
                                 amp=True, progress=config.progress, seed=config.seed, desc=name)
    metrics = evaluate(model, split.x_test, split.y_test, device=device).summary(CLASSES)
    metrics.update(parameters=float(count_parameters(model)), train_seconds=history.last["train_seconds"])
    return TrainResult(model, arch, metrics, history)


def _register(name: str, help: str) -> None:
    recipe(name, help=help, build=lambda **arch: BUILDERS[name](**arch))(lambda config: train_named(name, config))


_register("fcn32s", "FCN-32s on shapes: 1×1 class scores at stride 32, one learned ×32 upsampling")
_register("fcn16s", "FCN-16s on shapes: FCN-32s plus the pool4 skip (stride 16)")
_register("fcn8s", "FCN-8s on shapes: FCN-16s plus the pool3 skip (stride 8)")
_register("segnet", "SegNet on shapes: decoder unpools with the encoder's max-pooling indices")
_register("unet", "U-Net on shapes (padded convolutions, concatenated skips)")
