"""The lecture's backpropagation for the plain autoencoder, written out as matrix code.

One input x (a row of the batch) passes through

    h₀ = x,   a₁ = W h₀ + b,   h₁ = s(a₁) = z,   a₂ = W* h₁ + b*,   h₂ = s(a₂) = x̂

with s the sigmoid, W (k × n) the encoder's and W* (n × k) the decoder's weights (``encoder[0]`` and
``decoder[0]`` of ``DenseAutoencoder(n, k)``). The chain rule gives, for one example,

    ∂L/∂W* = ∂L/∂h₂ · ∂h₂/∂a₂ · ∂a₂/∂W*                  = δ₂ h₁ᵀ,   δ₂ = ∂L/∂h₂ ⊙ s'(a₂)
    ∂L/∂W  = ∂L/∂h₂ · ∂h₂/∂a₂ · ∂a₂/∂h₁ · ∂h₁/∂a₁ · ∂a₁/∂W = δ₁ h₀ᵀ,   δ₁ = W*ᵀ δ₂ ⊙ s'(a₁)

with s'(a) = s(a)(1 − s(a)) = h(1 − h) and ∂L/∂b* = δ₂, ∂L/∂b = δ₁. For the squared error
L = (x̂ − x)ᵀ(x̂ − x), ∂L/∂h₂ = 2(x̂ − x); for the cross-entropy L = −Σ [x log x̂ + (1 − x) log(1 − x̂)],
∂L/∂h₂ = (x̂ − x) / (x̂(1 − x̂)), so the sigmoid's derivative cancels and δ₂ = x̂ − x. Over a batch the
loss is summed over examples, so each gradient is a sum of outer products: one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Loss = Literal["squared", "cross_entropy"]


@dataclass
class Activations:
    """The forward pass of a batch: rows of ``h0`` = x, ``a1``, ``h1`` = z, ``a2``, ``h2`` = x̂."""

    h0: torch.Tensor
    a1: torch.Tensor
    h1: torch.Tensor
    a2: torch.Tensor
    h2: torch.Tensor


def forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, W_star: torch.Tensor,
            b_star: torch.Tensor) -> Activations:
    """h₁ = s(W x + b), h₂ = s(W* h₁ + b*) for every row x of ``x`` (N, n)."""
    a1 = x @ W.T + b
    h1 = torch.sigmoid(a1)
    a2 = h1 @ W_star.T + b_star
    return Activations(h0=x, a1=a1, h1=h1, a2=a2, h2=torch.sigmoid(a2))


def loss(x_hat: torch.Tensor, x: torch.Tensor, kind: Loss = "squared") -> torch.Tensor:
    """The batch's summed loss: Σ (x̂ − x)ᵀ(x̂ − x), or Σ −[x log x̂ + (1 − x) log(1 − x̂)]."""
    if kind == "squared":
        return ((x_hat - x) ** 2).sum()
    if kind == "cross_entropy":
        return -(x * torch.log(x_hat) + (1 - x) * torch.log(1 - x_hat)).sum()
    raise ValueError(f"unknown loss {kind!r}: use 'squared' or 'cross_entropy'")


def gradients(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, W_star: torch.Tensor, b_star: torch.Tensor,
              kind: Loss = "squared") -> dict[str, torch.Tensor]:
    """∂L/∂W, ∂L/∂b, ∂L/∂W*, ∂L/∂b* of the summed ``loss`` over the batch ``x`` (N, n), by the chain rule.

    Returns a dict with keys ``"W"``, ``"b"``, ``"W_star"``, ``"b_star"``, each shaped like its parameter.
    """
    act = forward(x, W, b, W_star, b_star)
    if kind == "squared":
        delta2 = 2 * (act.h2 - x) * act.h2 * (1 - act.h2)   # ∂L/∂h₂ ⊙ ∂h₂/∂a₂
    elif kind == "cross_entropy":
        delta2 = act.h2 - x                                  # the sigmoid's s' cancels
    else:
        raise ValueError(f"unknown loss {kind!r}: use 'squared' or 'cross_entropy'")
    delta1 = (delta2 @ W_star) * act.h1 * (1 - act.h1)      # ∂a₂/∂h₁ = W*, then ∂h₁/∂a₁ = s'(a₁)
    return {
        "W_star": delta2.T @ act.h1,                          # Σ δ₂ h₁ᵀ
        "b_star": delta2.sum(0),
        "W": delta1.T @ act.h0,                               # Σ δ₁ h₀ᵀ
        "b": delta1.sum(0),
    }
