"""Reconstruction quality: mean squared error per pixel (of tensors, or of a model on images) and PSNR."""

from __future__ import annotations

import torch
from torch import nn


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Mean squared error per pixel, (1/N) Σ (x̂ − x)², pixels in [0, 1]."""
    if x_hat.shape != x.shape:
        raise ValueError(f"shapes differ: {tuple(x_hat.shape)} vs {tuple(x.shape)}")
    return float(torch.mean((x_hat.double() - x.double()) ** 2))


def psnr(x_hat: torch.Tensor, x: torch.Tensor, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(max² / MSE), over the whole batch."""
    err = mse(x_hat, x)
    return float("inf") if err == 0 else 10.0 * float(torch.log10(torch.tensor(max_value ** 2 / err)))


@torch.no_grad()
def evaluate_mse(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> float:
    """Mean squared error per pixel, (1/N) Σ (x̂ − x)², of ``model(x)`` against x (pixels in [0, 1]).

    Runs in eval mode on the model's device, in batches, and accumulates in float64.
    """
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size].to(device)
        total += float(((model(batch).double() - batch.double()) ** 2).sum())
    return total / x.numel()
