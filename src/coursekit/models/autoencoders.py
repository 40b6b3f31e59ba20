"""Autoencoders: h(x) = g(f(x)) ≈ x, with encoder f(x) = s(Wx + b) = z and decoder g(z) = s(W'z + b').

The lecture's plain autoencoder is ``DenseAutoencoder(in_features, code_size)``: one affine layer and a
sigmoid each way. ``hidden`` adds layers, ``activation=None`` removes the non-linearity (the linear AE
that reaches PCA's capacity).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, None: nn.Identity}


def _activation(name: str | None) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: use one of {list(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def _mlp(sizes: Sequence[int], activation: str | None, last_activation: str | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        layers.append(_activation(last_activation if i == len(sizes) - 2 else activation))
    return nn.Sequential(*layers)


class DenseAutoencoder(nn.Module):
    """Fully connected autoencoder: ``code = encoder(x)``, ``x_hat = decoder(code)``.

    With ``hidden=()`` it is the lecture's f(x) = s(Wx + b) = z, g(z) = s(W'z + b'): ``encoder[0]`` holds
    W (code_size × in_features) and b, ``decoder[0]`` holds W' and b'. ``hidden=(h1, h2, ...)`` inserts
    layers between input and code (mirrored in the decoder). ``activation`` is s for the code and the
    hidden layers, ``out_activation`` the decoder's last; ``None`` means identity.
    """

    def __init__(self, in_features: int, code_size: int, hidden: Sequence[int] = (),
                 activation: str | None = "sigmoid", out_activation: str | None = "sigmoid"):
        super().__init__()
        if in_features < 1 or code_size < 1:
            raise ValueError(f"in_features and code_size must be positive, got {in_features}, {code_size}")
        self.in_features, self.code_size = in_features, code_size
        sizes = [in_features, *hidden, code_size]
        self.encoder = _mlp(sizes, activation, activation)
        self.decoder = _mlp(sizes[::-1], activation, out_activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = f(x), flattening images to vectors first."""
        return self.encoder(x.flatten(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """x_hat = g(z)."""
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)).view_as(x)


def dense_ae(in_features: int = 64, code_size: int = 16, hidden: Sequence[int] = (),
             activation: str | None = "sigmoid", out_activation: str | None = "sigmoid") -> DenseAutoencoder:
    """The lecture's plain autoencoder (sigmoid code and sigmoid output), 64 inputs for the digits."""
    return DenseAutoencoder(in_features, code_size, hidden, activation, out_activation)
