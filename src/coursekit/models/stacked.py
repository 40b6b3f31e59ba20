"""Stacked autoencoders: greedy layer-wise pretraining, then a classifier on top, fine-tuned end to end.

Bengio et al., *Greedy layer-wise training of deep networks* (NeurIPS 2006); Vincent et al., *Stacked
denoising autoencoders* (JMLR 2010). The lecture's recipe:

1. train AE 1 on the inputs x: code h¹ = f₁(x), reconstruction g₁(h¹) ≈ x;
2. train AE 2 on AE 1's codes h¹ (AE 1 frozen): h² = f₂(h¹), g₂(h²) ≈ h¹; and so on;
3. put a classifier on the last code, x ↦ softmax(V f_L(… f₁(x))), and fine-tune every layer with the labels.

``StackedAutoencoder`` holds the encoders f_k and decoders g_k (one sigmoid layer each);
``pretrain_layer`` trains layer k with ``coursekit.aetrain.train_autoencoder`` on the codes of the
layers below, which only compute its inputs and are not handed to the optimiser, so they cannot
change; ``greedy_pretrain`` does every layer in turn. ``StackedClassifier`` adds the linear head and
``fine_tune`` trains all of it with cross-entropy.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.aetrain import Corrupt, Penalty, TensorBatches, train_autoencoder
from coursekit.data import Split
from coursekit.device import seed_everything
from coursekit.models.autoencoders import Autoencoder
from coursekit.train import History, fit


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


@torch.no_grad()
def _codes(stack: StackedAutoencoder, x: torch.Tensor, depth: int, batch_size: int = 2048) -> torch.Tensor:
    """h^depth for every row of x, computed on the stack's device and returned on the CPU."""
    stack.eval()
    device = next(stack.parameters()).device
    return torch.cat([stack.encode(x[i:i + batch_size].to(device), depth).cpu()
                      for i in range(0, len(x), batch_size)])


def layer_inputs(stack: StackedAutoencoder, split: Split, k: int) -> Split:
    """The data layer k trains on: every split passed through the (fixed) layers 0 … k−1; labels kept."""
    return Split(_codes(stack, split.x_train, k), split.y_train, _codes(stack, split.x_val, k), split.y_val,
                 _codes(stack, split.x_test, k), split.y_test)


def pretrain_layer(stack: StackedAutoencoder, k: int, split: Split, *, epochs: int, lr: float = 1e-2,
                   batch_size: int = 64, penalty: Penalty | None = None, corrupt: Corrupt | None = None,
                   device: torch.device | str | None = None, progress: bool = False, seed: int = 0) -> History:
    """Greedy step k: train (f_k, g_k) to reconstruct the codes of layers 0 … k−1 on ``split``.

    The layers below only produce the inputs (under ``no_grad``) and the optimiser only sees layer k's
    parameters, so layers 0 … k−1 stay exactly as they were. ``penalty``/``corrupt`` make each layer
    a sparse/denoising/contractive AE (stacked denoising AEs corrupt each layer's own input).
    """
    device = device if device is not None else next(stack.parameters()).device
    stack.to(device)
    inputs = layer_inputs(stack, split, k)
    return train_autoencoder(stack.layer(k), inputs, epochs=epochs, lr=lr, batch_size=batch_size,
                             penalty=penalty, corrupt=corrupt, schedule="cosine", device=device,
                             progress=progress, seed=seed + k)


def greedy_pretrain(stack: StackedAutoencoder, split: Split, *, epochs: int, lr: float = 1e-2,
                    batch_size: int = 64, device: torch.device | str | None = None, progress: bool = False,
                    seed: int = 0) -> list[History]:
    """Pretrain every layer in turn (AE 1 on x, AE 2 on AE 1's codes, ...); one History per layer."""
    return [pretrain_layer(stack, k, split, epochs=epochs, lr=lr, batch_size=batch_size, device=device,
                           progress=progress, seed=seed) for k in range(stack.depth)]


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


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> float:
    """Fraction of rows of x whose arg-max logit is the label y (eval mode, on the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    correct = sum(int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / len(x)


def fine_tune(model: nn.Module, split: Split, *, epochs: int, lr: float = 3e-3, batch_size: int = 64,
              weight_decay: float = 0.0, device: torch.device | str | None = None, progress: bool = False,
              seed: int = 0, limit: int | None = None) -> History:
    """Train every parameter of ``model`` (a classifier giving logits) with cross-entropy on the training labels.

    The same loop serves the pretrained stack, the same architecture from random initialisation and a
    linear classifier on raw pixels. ``limit`` keeps only the first ``limit`` labelled training
    examples (the few-labels setting where pretraining on all images pays off). The history records
    ``val_accuracy`` per epoch.
    """
    seed_everything(seed)
    x, y = split.x_train.flatten(1), split.y_train
    if limit is not None:
        x, y = x[:limit], y[:limit]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    batches = TensorBatches(x, min(batch_size, len(x)), seed=seed, labels=y)
    return fit(model, batches, lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]), epochs=epochs,
               optimizer=optimizer, val_loader=TensorBatches(split.x_val.flatten(1), 2048, shuffle=False,
                                                             labels=split.y_val),
               metrics=lambda model, val: {"val_accuracy": accuracy(model, split.x_val.flatten(1), split.y_val)},
               device=device, progress=progress, desc="fine-tune")
