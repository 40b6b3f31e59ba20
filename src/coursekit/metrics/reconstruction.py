"""Reconstruction quality: mean squared error per pixel and PSNR."""

from __future__ import annotations

import torch


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Mean squared error per pixel, (1/N) Σ (x̂ − x)², pixels in [0, 1]."""
    if x_hat.shape != x.shape:
        raise ValueError(f"shapes differ: {tuple(x_hat.shape)} vs {tuple(x.shape)}")
    return float(torch.mean((x_hat.double() - x.double()) ** 2))


def psnr(x_hat: torch.Tensor, x: torch.Tensor, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(max² / MSE), over the whole batch."""
    err = mse(x_hat, x)
    return float("inf") if err == 0 else 10.0 * float(torch.log10(torch.tensor(max_value ** 2 / err)))
