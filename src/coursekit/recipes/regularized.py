"""Trainers of the regularised and stacked autoencoders: ``sparse-ae``, ``denoising-ae``, ``contractive-ae``
and ``stacked-ae``.

Each trains on the bundled digits (or MNIST / Fashion-MNIST with ``--data mnist|fashion --data-root
DIR``) and reports ``test_mse`` (squared error per pixel of clean test images, pixels in [0, 1]) plus
what its chapter measures: the mean activation ρ̂ (sparse), PSNR of corrupted and denoised test images
(denoising), the Jacobian norm of the encoder (contractive), and ``test_accuracy`` of the fine-tuned
classifier on top of the pretrained stack (stacked). The penalty weights (ρ, β, the noise, λ) are
settings of the recipes (``coursekit.recipes.SPARSE``, ``DENOISING``, ``CONTRACTIVE``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from coursekit.engine import fine_tune, greedy_pretrain
from coursekit.errors import UsageError
from coursekit.metrics.classification import accuracy
from coursekit.metrics.reconstruction import evaluate_mse, psnr
from coursekit.models import count_parameters
from coursekit.models.autoencoders import dense_ae
from coursekit.models.stacked import stacked_classifier
from coursekit.ops.corruption import Corruption, corrupt
from coursekit.ops.penalties import (code_sensitivity, contractive_penalty, dataset_rho_hat, jacobian_frobenius,
                                     kl_sparsity, sparse_penalty)
from coursekit.recipes import TrainConfig, TrainResult
from coursekit.recipes.autoencoders import load_split, reconstruction_metrics, train_with


def _train_dense(config: TrainConfig, **regulariser: Any):
    split = load_split(config, flat=True)
    model = dense_ae(split.x_train.shape[1], config["code_size"])
    history = train_with(model, split, config, **regulariser)
    return model, split, {"in_features": model.in_features, "code_size": config["code_size"]}, history


def train_sparse_ae(config: TrainConfig) -> TrainResult:
    rho, beta = config["rho"], config["beta"]
    model, split, arch, history = _train_dense(config, penalty=sparse_penalty(rho, beta))
    rho_hat = dataset_rho_hat(model, split.x_train)
    metrics = {**reconstruction_metrics(model, split, config.seed), "rho": rho, "beta": beta,
               "mean_rho_hat": float(rho_hat.mean()), "max_rho_hat": float(rho_hat.max()),
               "kl_train": float(kl_sparsity(rho, rho_hat))}
    return TrainResult(model, arch, metrics, history)


def train_denoising_ae(config: TrainConfig) -> TrainResult:
    kind, level = config["noise"], config["level"]
    if kind != "gaussian" and level > 1:
        raise UsageError(f"denoising-ae: --level is a probability for {kind} noise, in [0, 1], not {level}")
    model, split, arch, history = _train_dense(config, corrupt=Corruption(kind, level))
    noisy = corrupt(split.x_test, kind, level, torch.Generator().manual_seed(config.seed + 1))
    with torch.no_grad():
        denoised = model(noisy.to(config.device)).cpu()
    metrics = {**reconstruction_metrics(model, split, config.seed), "noise_level": level,
               "psnr_corrupted": psnr(noisy, split.x_test), "psnr_denoised": psnr(denoised, split.x_test),
               "denoised_test_mse": float(((denoised.double() - split.x_test.double()) ** 2).mean())}
    return TrainResult(model, arch, metrics, history)


def train_contractive_ae(config: TrainConfig) -> TrainResult:
    model, split, arch, history = _train_dense(config, penalty=contractive_penalty(config["lam"]))
    model.eval()
    x_test = split.x_test.to(config.device)
    jac = jacobian_frobenius(model.encode, x_test)
    metrics = {**reconstruction_metrics(model, split, config.seed), "lam": config["lam"],
               "jacobian_frobenius_sq": float(jac.double().mean()),
               "code_sensitivity": code_sensitivity(model.encode, x_test, eps=0.1,
                                                    generator=torch.Generator(config.device).manual_seed(config.seed))}
    return TrainResult(model, arch, metrics, history)


def train_stacked_ae(config: TrainConfig) -> TrainResult:
    """``stacked-ae`` (greedy pretraining, then fine-tuning) and ``scratch-classifier`` (fine-tuning only).

    With ``labels = L`` the classifier sees only the first L labelled training digits, for as many
    steps as fine-tuning on all of them takes (epochs × ⌈N / batch⌉), so fewer labels never means
    less training.
    """
    split = load_split(config, flat=True)
    code_size = config["code_size"]  # 64 → 32 → 16 on the digits, as in its chapter
    arch = {"in_features": split.x_train.shape[1], "sizes": [2 * code_size, code_size],
            "num_classes": int(max(split.y_train.max(), split.y_test.max())) + 1}
    model = stacked_classifier(**arch).to(config.device)
    settings = dict(epochs=config["epochs"], batch_size=config["batch_size"], device=config.device,
                    progress=config.progress, seed=config.seed)
    metrics = {}
    if config["pretrain"]:
        pretrain = greedy_pretrain(model.stack, split, lr=config["lr"], **settings)
        metrics = {"test_mse": evaluate_mse(model.stack, split.x_test),
                   "train_mse": evaluate_mse(model.stack, split.x_train),
                   "pretrain_layer_val_mse": pretrain[-1].last.get("val_mse", float("nan"))}
    labels = min(config["labels"] or len(split.x_train), len(split.x_train))
    steps = config["epochs"] * math.ceil(len(split.x_train) / config["batch_size"])
    settings["epochs"] = max(1, steps // math.ceil(labels / config["batch_size"]))
    history = fine_tune(model, split, lr=config["lr"] * 0.3, limit=labels, **settings)
    metrics = {"test_accuracy": accuracy(model, split.x_test, split.y_test),
               "val_accuracy": history.last.get("val_accuracy", float("nan")), **metrics,
               "labels": float(labels), "parameters": float(count_parameters(model))}
    return TrainResult(model, arch, metrics, history)
