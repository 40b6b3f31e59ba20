"""Trainers of Part I's first recipes: ``linear-ae``, ``dense-ae``, ``deep-ae`` and ``conv-ae``.

Each trains on the bundled 8×8 digits (or MNIST / Fashion-MNIST with ``--data mnist|fashion
--data-root DIR``) and reports ``test_mse``, the squared error per pixel on the test split, pixels in
[0, 1], and ``psnr_masked``, how well it restores masked test images. ``linear-ae`` also fits PCA
with as many components as the code has units and reports its ``pca_test_mse``: the linear AE
should match it, and not beat it by more than the luck of the split.
The settings come resolved in the ``TrainConfig`` (see ``coursekit.recipes.RECIPES``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from coursekit.data import Split, load_digits_split, load_mnist
from coursekit.engine import refine_lbfgs, train_autoencoder
from coursekit.errors import UsageError
from coursekit.metrics.classification import linear_probe_accuracy
from coursekit.metrics.filters import neighbour_correlation
from coursekit.metrics.reconstruction import evaluate_mse, mse, psnr
from coursekit.models import count_parameters
from coursekit.models.autoencoders import conv_ae, dense_ae, linear_ae
from coursekit.models.pca import PCA, principal_angles
from coursekit.ops.corruption import corrupt
from coursekit.recipes import NOISE_LEVELS, TrainConfig, TrainResult


def load_split(config: TrainConfig, flat: bool) -> Split:
    """The recipe's data: the digits, or MNIST / Fashion-MNIST from ``config.data_root``."""
    if config.data == "digits":
        return load_digits_split(seed=config.seed, flat=flat, limit=config["limit"])
    if not config.data_root:
        raise UsageError(f"--data {config.data} needs --data-root, the folder holding the IDX files")
    return load_mnist(config.data_root, config.data, flat=flat, seed=config.seed, limit=config["limit"])


def reconstruction_metrics(model: torch.nn.Module, split: Split, seed: int) -> dict[str, float]:
    """What every autoencoder recipe reports, so that their runs compare:

    * ``test_mse`` and ``train_mse``, the squared error per pixel, and the number of ``parameters``;
    * for each corruption of ``NOISE_LEVELS`` at its level, the PSNR of the clean test images against
      their reconstructions from a corrupted copy (``psnr_gaussian``, ``psnr_masked``,
      ``psnr_salt_and_pepper``; noise drawn with seed ``seed + 1``);
    * the codes as features: the test accuracy of a linear probe (``linear_probe_accuracy``) trained on
      the codes of all training images (``probe_accuracy``) or of the first 50 (``probe_accuracy_50``),
      and of the first tested on the codes of the masked test images (``probe_masked``);
    * for an encoder whose first layer is dense, how smooth its filters are (``filter_smoothness``,
      ``neighbour_correlation`` of the weights on the image grid, pixels constant in training left out).
    """
    model.eval()
    device = next(model.parameters()).device
    metrics = {"test_mse": evaluate_mse(model, split.x_test), "train_mse": evaluate_mse(model, split.x_train)}
    corrupted = {kind: corrupt(split.x_test, kind, level, torch.Generator().manual_seed(seed + 1))
                 for kind, level in NOISE_LEVELS.items()}
    with torch.no_grad():
        for kind, noisy in corrupted.items():
            restored = model(noisy.to(device)).cpu()
            metrics["psnr_masked" if kind == "masking" else f"psnr_{kind}"] = psnr(restored, split.x_test)
        codes = {name: model.encode(x.to(device)).cpu() for name, x in
                 (("train", split.x_train), ("test", split.x_test), ("masked", corrupted["masking"]))}
    metrics.update(
        probe_accuracy=linear_probe_accuracy(codes["train"], split.y_train, codes["test"], split.y_test),
        probe_accuracy_50=linear_probe_accuracy(codes["train"][:50], split.y_train[:50], codes["test"], split.y_test),
        probe_masked=linear_probe_accuracy(codes["train"], split.y_train, codes["masked"], split.y_test))
    first = next((m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)), None) \
        if hasattr(model, "encoder") else None
    if first is not None and split.x_train.dim() == 2:
        metrics["filter_smoothness"] = neighbour_correlation(first.weight, unused=split.x_train.std(0) == 0)
    return {**metrics, "parameters": float(count_parameters(model))}


def train_with(model: torch.nn.Module, split: Split, config: TrainConfig, **regulariser: Any):
    """``train_autoencoder`` with the recipe's settings: Adam, cosine schedule, the resolved device,
    the recipe's reconstruction ``loss`` (squared error unless it says ``bce``).

    A ``batch_size`` of None means full batch.
    """
    return train_autoencoder(model, split, epochs=config["epochs"], lr=config["lr"],
                             batch_size=config["batch_size"] or len(split.x_train), schedule="cosine",
                             loss=config.settings.get("loss", "mse"), device=config.device,
                             progress=config.progress, seed=config.seed, **regulariser)


def train_linear_ae(config: TrainConfig) -> TrainResult:
    split = load_split(config, flat=True)
    model = linear_ae(split.x_train.shape[1], config["code_size"])
    history = train_with(model, split, config)
    refine_lbfgs(model, split.x_train, max_iter=config["lbfgs_iter"])
    pca = PCA.fit(split.x_train, config["code_size"])
    angles = principal_angles(model.decoder[0].weight.detach().cpu(), pca.components.T)
    metrics = {**reconstruction_metrics(model, split, config.seed),
               "pca_test_mse": mse(pca.reconstruct(split.x_test), split.x_test),
               "max_principal_angle_deg": math.degrees(float(angles.max()))}
    return TrainResult(model, {"in_features": model.in_features, "code_size": config["code_size"]}, metrics, history)


def train_dense_ae(config: TrainConfig) -> TrainResult:
    """``dense-ae`` (the lecture's one-layer sigmoid AE) and ``deep-ae`` (its ``hidden`` layers and
    ``activation`` from the recipe's settings)."""
    split = load_split(config, flat=True)
    arch = {"in_features": split.x_train.shape[1], "code_size": config["code_size"],
            **{key: config.settings[key] for key in ("hidden", "activation") if key in config.settings}}
    model = dense_ae(**arch)
    history = train_with(model, split, config)
    return TrainResult(model, arch, reconstruction_metrics(model, split, config.seed), history)


def train_conv_ae(config: TrainConfig) -> TrainResult:
    split = load_split(config, flat=False)
    channels, height, width = split.x_train.shape[1:]
    cells = (height // 4) * (width // 4)  # the code map is H/4 × W/4
    if config["code_size"] % cells:
        raise UsageError(f"conv-ae's code is a map of {height // 4}×{width // 4} cells: --code-size must be a "
                         f"multiple of {cells}, got {config['code_size']}")
    arch = {"in_channels": channels, "code_channels": config["code_size"] // cells, "channels": [16, 32],
            "upsample": config["upsample"], "mean": float(split.x_train.mean()), "std": float(split.x_train.std())}
    model = conv_ae(**arch)
    history = train_with(model, split, config)
    return TrainResult(model, arch, reconstruction_metrics(model, split, config.seed), history)
