"""Recipes for the regularised and stacked autoencoders: ``sparse-ae``, ``denoising-ae``, ``contractive-ae``
and ``stacked-ae``.

Each trains on the bundled digits (or MNIST / Fashion-MNIST with ``--data mnist|fashion --data-root
DIR``) and reports ``test_mse`` (squared error per pixel of clean test images, pixels in [0, 1]) plus
what its chapter measures: the mean activation ρ̂ (sparse), PSNR of corrupted and denoised test images
(denoising), the Jacobian norm of the encoder (contractive), and ``test_accuracy`` of the fine-tuned
classifier on top of the pretrained stack (stacked). The penalty weights (ρ, β, noise, λ) are the
chapters' defaults below.
"""

from __future__ import annotations

from typing import Any

import torch

from coursekit.aetrain import evaluate_mse
from coursekit.data import Split
from coursekit.device import get_device, seed_everything
from coursekit.metrics.reconstruction import psnr
from coursekit.models.autoencoders import dense_ae
from coursekit.models.regularized import (Corruption, code_sensitivity, contractive_penalty, corrupt,
                                          dataset_rho_hat, jacobian_frobenius, kl_sparsity, sparse_penalty)
from coursekit.models.stacked import accuracy, fine_tune, greedy_pretrain, stacked_classifier
from coursekit.recipes import TrainConfig, TrainResult, recipe
from coursekit.recipes.autoencoders import load_split, reconstruction_metrics, settings, train_with

RHO, BETA = 0.05, 0.03                  # sparse: target mean activation, weight of the KL term
NOISE = ("masking", 0.3)                # denoising: corruption and its level
LAM = 1e-3                              # contractive: weight of ‖J_f(x)‖²_F

_DEFAULTS = {
    "digits": dict(code_size=32, epochs=100, quick_epochs=2, lr=1e-2, batch_size=64),
    "mnist": dict(code_size=64, epochs=10, quick_epochs=2, lr=3e-3, batch_size=128),
}


def _train_dense(config: TrainConfig, **regulariser) -> tuple[torch.nn.Module, Split, dict, Any]:
    split, kind = load_split(config, flat=True)
    s = settings(_DEFAULTS[kind], config, split)
    seed_everything(config.seed)
    model = dense_ae(split.x_train.shape[1], s["code_size"])
    history = train_with(model, split, s, config, **regulariser)
    return model, split, {"in_features": model.in_features, "code_size": s["code_size"]}, history


@recipe("sparse-ae", help=f"sparse autoencoder: β Σ KL(ρ‖ρ̂_j), ρ = {RHO}, β = {BETA}, ρ̂ per batch",
        build=lambda **config: dense_ae(**config))
def train_sparse_ae(config: TrainConfig) -> TrainResult:
    model, split, arch, history = _train_dense(config, penalty=sparse_penalty(RHO, BETA))
    rho_hat = dataset_rho_hat(model, split.x_train)
    metrics = {**reconstruction_metrics(model, split), "rho": RHO, "beta": BETA, "mean_rho_hat": float(rho_hat.mean()),
               "max_rho_hat": float(rho_hat.max()), "kl_train": float(kl_sparsity(RHO, rho_hat))}
    return TrainResult(model, arch, metrics, history)


@recipe("denoising-ae", help=f"denoising autoencoder: {NOISE[0]} noise at {NOISE[1]}, loss against the clean x",
        build=lambda **config: dense_ae(**config))
def train_denoising_ae(config: TrainConfig) -> TrainResult:
    kind, level = NOISE
    model, split, arch, history = _train_dense(config, corrupt=Corruption(kind, level))
    noisy = corrupt(split.x_test, kind, level, torch.Generator().manual_seed(config.seed + 1))
    device = next(model.parameters()).device
    with torch.no_grad():
        denoised = model(noisy.to(device)).cpu()
    metrics = {**reconstruction_metrics(model, split), "noise_level": level, "psnr_corrupted": psnr(noisy, split.x_test),
               "psnr_denoised": psnr(denoised, split.x_test),
               "denoised_test_mse": float(((denoised.double() - split.x_test.double()) ** 2).mean())}
    return TrainResult(model, arch, metrics, history)


@recipe("contractive-ae", help=f"contractive autoencoder: λ ‖J_f(x)‖²_F, λ = {LAM} (closed form for its sigmoid encoder)",
        build=lambda **config: dense_ae(**config))
def train_contractive_ae(config: TrainConfig) -> TrainResult:
    model, split, arch, history = _train_dense(config, penalty=contractive_penalty(LAM))
    model.eval()
    device = next(model.parameters()).device
    x_test = split.x_test.to(device)
    jac = jacobian_frobenius(model.encode, x_test)
    metrics = {**reconstruction_metrics(model, split), "lam": LAM, "jacobian_frobenius_sq": float(jac.double().mean()),
               "code_sensitivity": code_sensitivity(model.encode, x_test, eps=0.1,
                                                    generator=torch.Generator(device).manual_seed(config.seed))}
    return TrainResult(model, arch, metrics, history)


@recipe("stacked-ae", help="stacked autoencoder in → 2·code → code, greedy layer-wise, then a fine-tuned classifier",
        build=lambda **config: stacked_classifier(**config))
def train_stacked_ae(config: TrainConfig) -> TrainResult:
    split, kind = load_split(config, flat=True)
    s = settings(_DEFAULTS[kind], config, split)
    device = get_device(config.device)
    code_size = config.get("code_size", s["code_size"] // 2)  # 64 → 32 → 16 on the digits, as in its chapter
    sizes = (2 * code_size, code_size)
    arch = {"in_features": split.x_train.shape[1], "sizes": list(sizes),
            "num_classes": int(max(split.y_train.max(), split.y_test.max())) + 1}
    seed_everything(config.seed)
    model = stacked_classifier(**arch).to(device)
    pretrain = greedy_pretrain(model.stack, split, epochs=s["epochs"], lr=s["lr"], batch_size=s["batch_size"],
                               device=device, progress=config.progress, seed=config.seed)
    test_mse, train_mse = evaluate_mse(model.stack, split.x_test), evaluate_mse(model.stack, split.x_train)
    history = fine_tune(model, split, epochs=s["epochs"], lr=s["lr"] * 0.3, batch_size=s["batch_size"],
                        device=device, progress=config.progress, seed=config.seed)
    metrics = {"test_accuracy": accuracy(model, split.x_test, split.y_test),
               "val_accuracy": history.last.get("val_accuracy", float("nan")),
               "test_mse": test_mse, "train_mse": train_mse,
               "pretrain_layer_val_mse": pretrain[-1].last.get("val_mse", float("nan")),
               "parameters": float(sum(p.numel() for p in model.parameters()))}
    return TrainResult(model, arch, metrics, history)
