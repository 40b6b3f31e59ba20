"""Stacked autoencoders, and a classifier on top of one.

Bengio et al., *Greedy layer-wise training of deep networks* (NeurIPS 2006); Vincent et al., *Stacked
denoising autoencoders* (JMLR 2010). ``StackedAutoencoder`` holds the encoders f_k and decoders g_k
(one sigmoid layer each); ``layer(k)`` is the autoencoder (f_{k+1}, g_{k+1}) that greedy pretraining
trains (``coursekit.engine.greedy_pretrain``). ``StackedClassifier`` puts a linear (softmax) head on
the last code, x ↦ softmax(V f_L(… f₁(x))), to fine-tune end to end (``coursekit.engine.fine_tune``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from coursekit.models.autoencoders import Autoencoder


def _sigmoid_layer(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.Sigmoid())


class StackedAutoencoder(nn.Module):
    """Encoders f_k(h) = s(W_k h + b_k) of sizes ``in_features → sizes[0] → sizes[1] → …``, and their decoders.

    ``encode(x, depth)`` applies f_1 … f_depth (all by default); ``decode(code, depth)`` applies
    g_depth … g_1, so ``forward`` reconstructs x through the whole stack. ``layer(k)`` (0-based) is
    the autoencoder (f_{k+1}, g_{k+1}) that greedy pretraining trains.
    """

    def __init__(self, in_features: int = 64, sizes: Sequence[int] = (32, 16)):
        super().__init__()
        if not sizes:
            raise ValueError("a stacked autoencoder needs at least one layer")
        dims = [in_features, *sizes]
        self.in_features, self.sizes = in_features, tuple(sizes)
        self.encoders = nn.ModuleList(_sigmoid_layer(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.decoders = nn.ModuleList(_sigmoid_layer(b, a) for a, b in zip(dims[:-1], dims[1:]))

    @property
    def depth(self) -> int:
        """The number of layers L."""
        return len(self.encoders)

    def layer(self, k: int) -> Autoencoder:
        """Layer k (0-based) as an autoencoder (f_{k+1}, g_{k+1}) sharing the stack's parameters."""
        if not 0 <= k < self.depth:
            raise IndexError(f"layer {k} of a stack of {self.depth}")
        return Autoencoder(self.encoders[k], self.decoders[k])

    def encode(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """h^depth = f_depth(… f_1(x)), the code after ``depth`` layers (all of them by default)."""
        h = x.flatten(1)
        for encoder in self.encoders[:self.depth if depth is None else depth]:
            h = encoder(h)
        return h

    def decode(self, code: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """g_1(… g_depth(code)): back from the code of layer ``depth`` to the input space."""
        h = code
        for decoder in reversed(self.decoders[:self.depth if depth is None else depth]):
            h = decoder(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)).view_as(x)


def stacked_ae(in_features: int = 64, sizes: Sequence[int] = (32, 16)) -> StackedAutoencoder:
    """A stack of sigmoid autoencoders, 64 → 32 → 16 for the digits by default."""
    return StackedAutoencoder(in_features, tuple(sizes))


class StackedClassifier(nn.Module):
    """x ↦ logits V h^L + c, with h^L = f_L(… f_1(x)) the stack's top code and a linear (softmax) head."""

    def __init__(self, stack: StackedAutoencoder, num_classes: int = 10):
        super().__init__()
        self.stack = stack
        self.head = nn.Linear(stack.sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stack.encode(x))


def stacked_classifier(in_features: int = 64, sizes: Sequence[int] = (32, 16),
                       num_classes: int = 10) -> StackedClassifier:
    """A stacked AE with a classifier on top (randomly initialised: pretrain ``.stack`` first, or not)."""
    return StackedClassifier(stacked_ae(in_features, sizes), num_classes)
