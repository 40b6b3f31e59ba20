"""Recipes for Part I's first chapters: ``linear-ae``, ``dense-ae`` and ``conv-ae``.

Each trains on the bundled 8×8 digits (or MNIST / Fashion-MNIST with ``--data mnist|fashion
--data-root DIR``) and reports ``test_mse``, the squared error per pixel on the test split, pixels in
[0, 1]. ``linear-ae`` also fits PCA with as many components as the code has units and reports its
``pca_test_mse``: the linear AE should match it, and not beat it by more than the luck of the split.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from coursekit.aetrain import evaluate_mse, refine_lbfgs, train_autoencoder
from coursekit.data import Split, load_digits_split, load_mnist
from coursekit.device import get_device, quick_mode, seed_everything
from coursekit.metrics.reconstruction import mse
from coursekit.models.autoencoders import conv_ae, dense_ae, linear_ae
from coursekit.models.pca import PCA, principal_angles
from coursekit.recipes import TrainConfig, TrainResult, recipe

# Defaults per dataset: the digits are small (1,257 training images), MNIST-like sets are 50,000.
# ``quick_epochs`` replace ``epochs`` in quick mode (600 training images): a second or two of training.
_DEFAULTS = {
    "digits": {"linear-ae": dict(code_size=16, epochs=1000, quick_epochs=50, lr=1e-2, batch_size=None),
               "dense-ae": dict(code_size=16, epochs=300, quick_epochs=60, lr=1e-2, batch_size=64),
               "conv-ae": dict(code_size=16, epochs=100, quick_epochs=20, lr=1e-2, batch_size=64)},
    "mnist": {"linear-ae": dict(code_size=32, epochs=20, quick_epochs=5, lr=3e-3, batch_size=256),
              "dense-ae": dict(code_size=32, epochs=20, quick_epochs=5, lr=3e-3, batch_size=128),
              "conv-ae": dict(code_size=196, epochs=10, quick_epochs=3, lr=3e-3, batch_size=128)},
}


def _is_quick(config: TrainConfig) -> bool:
    return config.quick or quick_mode()


def load_split(config: TrainConfig, flat: bool) -> tuple[Split, str]:
    """The recipe's data, and which defaults apply: digits unless ``config.data`` names mnist/fashion."""
    limit = 600 if _is_quick(config) else None
    if config.data in ("default", "digits"):
        return load_digits_split(seed=config.seed, flat=flat, limit=limit), "digits"
    if config.data in ("mnist", "fashion"):
        if not config.data_root:
            raise ValueError(f"--data {config.data} needs --data-root, the folder holding the IDX files")
        return load_mnist(config.data_root, config.data, flat=flat, seed=config.seed, limit=limit), "mnist"
    raise ValueError(f"unknown data {config.data!r} for an autoencoder: use default, digits, mnist or fashion")


def settings(defaults: dict[str, Any], config: TrainConfig, split: Split) -> dict[str, Any]:
    """Epochs, lr, batch size and code size: the command line's, else ``defaults``, whose
    ``quick_epochs`` replace ``epochs`` in quick mode (a ``batch_size`` of None means full batch)."""
    defaults = dict(defaults)
    quick_epochs = defaults.pop("quick_epochs")
    if _is_quick(config):
        defaults["epochs"] = quick_epochs
    settings = {key: config.get(key, value) for key, value in defaults.items()}
    if settings["batch_size"] is None:  # full batch
        settings["batch_size"] = len(split.x_train)
    return settings


def reconstruction_metrics(model: torch.nn.Module, split: Split) -> dict[str, float]:
    """``test_mse`` and ``train_mse`` (squared error per pixel) and the number of parameters."""
    return {"test_mse": evaluate_mse(model, split.x_test), "train_mse": evaluate_mse(model, split.x_train),
            "parameters": float(sum(p.numel() for p in model.parameters()))}


def train_with(model: torch.nn.Module, split: Split, s: dict[str, Any], config: TrainConfig, **regulariser):
    """``train_autoencoder`` with the recipe's settings ``s``: Adam, cosine schedule, the chosen device."""
    return train_autoencoder(model, split, epochs=s["epochs"], lr=s["lr"], batch_size=s["batch_size"],
                             schedule="cosine", device=get_device(config.device), progress=config.progress,
                             seed=config.seed, **regulariser)


@recipe("linear-ae", help="linear autoencoder (no activations) vs PCA with as many components",
        build=lambda **config: linear_ae(**config))
def train_linear_ae(config: TrainConfig) -> TrainResult:
    split, kind = load_split(config, flat=True)
    s = settings(_DEFAULTS[kind]["linear-ae"], config, split)
    seed_everything(config.seed)
    model = linear_ae(split.x_train.shape[1], s["code_size"])
    history = train_with(model, split, s, config)
    refine_lbfgs(model, split.x_train, max_iter=300 if _is_quick(config) else 1000)
    pca = PCA.fit(split.x_train, s["code_size"])
    angles = principal_angles(model.decoder[0].weight.detach().cpu(), pca.components.T)
    metrics = {**reconstruction_metrics(model, split),
               "pca_test_mse": mse(pca.reconstruct(split.x_test), split.x_test),
               "max_principal_angle_deg": math.degrees(float(angles.max()))}
    return TrainResult(model, {"in_features": model.in_features, "code_size": s["code_size"]}, metrics, history)


@recipe("dense-ae", help="the lecture's plain autoencoder: sigmoid code, sigmoid output",
        build=lambda **config: dense_ae(**config))
def train_dense_ae(config: TrainConfig) -> TrainResult:
    split, kind = load_split(config, flat=True)
    s = settings(_DEFAULTS[kind]["dense-ae"], config, split)
    seed_everything(config.seed)
    model = dense_ae(split.x_train.shape[1], s["code_size"])
    history = train_with(model, split, s, config)
    return TrainResult(model, {"in_features": model.in_features, "code_size": s["code_size"]},
                       reconstruction_metrics(model, split), history)


@recipe("conv-ae", help="convolutional autoencoder: normalised input, ReLU, sigmoid on the last convolution",
        build=lambda **config: conv_ae(**config))
def train_conv_ae(config: TrainConfig) -> TrainResult:
    split, kind = load_split(config, flat=False)
    s = settings(_DEFAULTS[kind]["conv-ae"], config, split)
    channels, height, width = split.x_train.shape[1:]
    cells = (height // 4) * (width // 4)  # the code map is H/4 × W/4
    if s["code_size"] % cells:
        raise ValueError(f"conv-ae's code is a map of {height // 4}×{width // 4} cells: --code-size must be a "
                         f"multiple of {cells}, got {s['code_size']}")
    arch = {"in_channels": channels, "code_channels": s["code_size"] // cells, "channels": [16, 32],
            "upsample": "transposed", "mean": float(split.x_train.mean()), "std": float(split.x_train.std())}
    seed_everything(config.seed)
    model = conv_ae(**arch)
    history = train_with(model, split, s, config)
    return TrainResult(model, arch, reconstruction_metrics(model, split), history)
