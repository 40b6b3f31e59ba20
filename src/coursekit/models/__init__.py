"""Models, one module per family (as torchvision's ``models/``), each with builder functions.

``get_model("unet", num_classes=4)`` builds any of them by name, as ``torchvision.models.get_model``
does; a checkpoint's sidecar records that name and the arguments, so ``coursekit.checkpoint`` can
rebuild what it loads. The modules import torch, torchvision and ``coursekit.ops``, never the
training engine, the data, the metrics or the plots.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable

# builder name -> its module under coursekit.models (imported on first use: detection needs torchvision)
BUILDERS = {
    "dense_ae": "autoencoders", "linear_ae": "autoencoders", "conv_ae": "autoencoders",
    "stacked_ae": "stacked", "stacked_classifier": "stacked",
    "fcn32s": "fcn", "fcn16s": "fcn", "fcn8s": "fcn", "segnet": "segnet", "unet": "unet", "unet_valid": "unet",
    "detector": "detection", "maskrcnn": "detection",
}


def get_model_builder(name: str) -> Callable[..., Any]:
    """The builder function called ``name`` (one of ``BUILDERS``)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model builder {name!r}: use one of {sorted(BUILDERS)}")
    return getattr(import_module(f"coursekit.models.{BUILDERS[name]}"), name)


def get_model(name: str, **config: Any):
    """Build model ``name`` with the builder's keyword arguments ``config`` (untrained)."""
    return get_model_builder(name)(**config)


def count_parameters(model) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())
