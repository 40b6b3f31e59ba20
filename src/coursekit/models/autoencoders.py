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
    """A fresh activation module by name: sigmoid, relu, tanh, or None for the identity."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: use one of {list(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def _mlp(sizes: Sequence[int], activation: str | None, last_activation: str | None) -> nn.Sequential:
    """Linear layers sizes[0] → sizes[1] → …, each followed by ``activation`` (the last: ``last_activation``)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        layers.append(_activation(last_activation if i == len(sizes) - 2 else activation))
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """An encoder and a decoder: ``code = encode(x) = f(x)``, ``x_hat = decode(code) = g(z)``, h = g ∘ f."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = f(x), flattening images to vectors first."""
        return self.encoder(x.flatten(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """x_hat = g(z)."""
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)).view_as(x)


class DenseAutoencoder(Autoencoder):
    """Fully connected autoencoder: ``code = encoder(x)``, ``x_hat = decoder(code)``.

    With ``hidden=()`` it is the lecture's f(x) = s(Wx + b) = z, g(z) = s(W'z + b'): ``encoder[0]`` holds
    W (code_size × in_features) and b, ``decoder[0]`` holds W' and b'. ``hidden=(h1, h2, ...)`` inserts
    layers between input and code (mirrored in the decoder). ``activation`` is s for the code and the
    hidden layers, ``out_activation`` the decoder's last; ``None`` means identity.
    """

    def __init__(self, in_features: int, code_size: int, hidden: Sequence[int] = (),
                 activation: str | None = "sigmoid", out_activation: str | None = "sigmoid"):
        if in_features < 1 or code_size < 1:
            raise ValueError(f"in_features and code_size must be positive, got {in_features}, {code_size}")
        sizes = [in_features, *hidden, code_size]
        super().__init__(_mlp(sizes, activation, activation), _mlp(sizes[::-1], activation, out_activation))
        self.in_features, self.code_size = in_features, code_size


def dense_ae(in_features: int = 64, code_size: int = 16, hidden: Sequence[int] = (),
             activation: str | None = "sigmoid", out_activation: str | None = "sigmoid") -> DenseAutoencoder:
    """The lecture's plain autoencoder (sigmoid code and sigmoid output), 64 inputs for the digits."""
    return DenseAutoencoder(in_features, code_size, hidden, activation, out_activation)


def linear_ae(in_features: int = 64, code_size: int = 16) -> DenseAutoencoder:
    """The linear autoencoder: f(x) = Wx + b, g(z) = W'z + b', no non-linearity at all.

    Trained with squared error, its reconstructions reach those of PCA with ``code_size`` components
    and its decoder spans the same subspace (Baldi & Hornik, 1989), but no more.
    """
    return DenseAutoencoder(in_features, code_size, activation=None, out_activation=None)


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder: normalised input, 3×3 convolutions with ReLU, a sigmoid on the last one.

    The encoder halves H and W twice with stride-2 convolutions, so a C × H × W image becomes a code
    map of ``code_channels`` × H/4 × W/4; the decoder doubles them twice and ends in a 3×3 convolution
    with a sigmoid, so pixels come back in [0, 1]:

        encoder: x ↦ (x − mean)/std → conv(C→c1) → conv/2(c1→c2) → conv/2(c2→code)      (ReLU after each)
        decoder: code → up×2 → conv(code→c2) → up×2 → conv(c2→c1) → conv(c1→C) → sigmoid   (ReLU between)

    ``upsample="resize"`` doubles the size by nearest-neighbour resizing followed by a 3×3 convolution;
    ``"transposed"`` uses one 3×3 transposed convolution of stride 2 instead. A kernel that the stride
    does not divide overlaps unevenly and leaves checkerboard artifacts (Odena et al., 2016), which
    resize-then-convolve avoids. ``mean`` and ``std`` (per channel, usually the training set's) are
    buffers, so they travel with the weights.
    """

    def __init__(self, in_channels: int = 1, code_channels: int = 4, channels: tuple[int, int] = (16, 32),
                 upsample: str = "resize", mean: float | Sequence[float] = 0.0,
                 std: float | Sequence[float] = 1.0):
        super().__init__()
        if upsample not in ("resize", "transposed"):
            raise ValueError(f"unknown upsample {upsample!r}: use 'resize' or 'transposed'")
        c1, c2 = channels
        self.in_channels, self.code_channels = in_channels, code_channels
        self.register_buffer("mean", _per_channel(mean, in_channels))
        self.register_buffer("std", _per_channel(std, in_channels))
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, code_channels, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            _upsample(code_channels, c2, upsample), nn.ReLU(),
            _upsample(c2, c1, upsample), nn.ReLU(),
            nn.Conv2d(c1, in_channels, 3, padding=1), nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """code = f((x − mean) / std), a ``code_channels`` × H/4 × W/4 map."""
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"height and width must be multiples of 4, got {tuple(x.shape[-2:])}")
        return self.encoder((x - self.mean) / self.std)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """x_hat = g(code), pixels in [0, 1]."""
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def _per_channel(value: float | Sequence[float], n: int) -> torch.Tensor:
    """A (n, 1, 1) tensor from one value or one per channel, to broadcast over images."""
    return torch.as_tensor(value, dtype=torch.float32).expand(n).reshape(n, 1, 1).clone()


def _upsample(n_in: int, n_out: int, kind: str) -> nn.Module:
    """Double H and W: nearest resize then a 3×3 convolution, or a 3×3 transposed convolution of stride 2.

    The transposed one (padding 1, output_padding 1) spreads each input pixel over a 3×3 patch every 2
    pixels, so neighbouring outputs receive 4, 2 or 1 contributions: the checkerboard of Odena et al.
    """
    if kind == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(n_in, n_out, 3, padding=1))
    return nn.ConvTranspose2d(n_in, n_out, 3, stride=2, padding=1, output_padding=1)


def conv_ae(in_channels: int = 1, code_channels: int = 4, channels: tuple[int, int] = (16, 32),
            upsample: str = "resize", mean: float | Sequence[float] = 0.0,
            std: float | Sequence[float] = 1.0) -> ConvAutoencoder:
    """The lecture's convolutional autoencoder; on 8×8 digits the code is ``code_channels`` × 2 × 2."""
    return ConvAutoencoder(in_channels, code_channels, tuple(channels), upsample, mean, std)
