"""Filters: how smooth the weights of an encoder layer are, read on the image grid."""

from __future__ import annotations

import math

import numpy as np
import torch


def neighbour_correlation(weights: torch.Tensor | np.ndarray, shape: tuple[int, int] | None = None,
                          unused: torch.Tensor | np.ndarray | None = None) -> float:
    """How smooth a layer's filters are, in one number: the correlation between each weight and its right
    and lower neighbours on the ``shape`` grid, per filter (row of ``weights``), averaged over filters.
    The grid is square unless ``shape`` is given: 8×8 for 64 inputs, 28×28 for 784.

    Near 0 for speckled filters whose neighbouring weights are unrelated, towards 1 for smooth patches.
    Pairs that touch an ``unused`` input (inputs constant over the training set) are left out.
    """
    W = weights.detach().double().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights, float)
    shape = shape or (math.isqrt(W.shape[1]),) * 2
    W = W.reshape(len(W), *shape)
    used = np.ones(shape, bool) if unused is None else ~np.asarray(unused, dtype=bool).reshape(shape)
    right, down = used[:, :-1] & used[:, 1:], used[:-1] & used[1:]
    a = np.concatenate([W[:, :, :-1][:, right], W[:, :-1][:, down]], axis=1)
    b = np.concatenate([W[:, :, 1:][:, right], W[:, 1:][:, down]], axis=1)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    return float(((a * b).sum(1) / np.sqrt((a ** 2).sum(1) * (b ** 2).sum(1))).mean())
