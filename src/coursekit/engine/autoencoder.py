"""Train an autoencoder on a ``Split`` and measure its reconstruction error: Part I's shared loop.

``train_autoencoder`` minimises, over mini-batches of training images x,

    J(θ) = L(x, g(f(x̃))) + penalty(model, x̃, f(x̃)),     x̃ = corrupt(x)  (x̃ = x without ``corrupt``)

with L the squared error per pixel (``loss="mse"``) or the cross-entropy of pixels read as bit
probabilities (``loss="bce"``). The plain, sparse, denoising and contractive autoencoders of Part I are
all this one loop with a different ``penalty`` or ``corrupt``, for example

* sparse:       ``penalty=lambda model, x, code: beta * kl(rho, code.mean(0)).sum()``
* denoising:    ``corrupt=lambda x: x * (torch.rand_like(x) > p)`` (the loss still targets the clean x)
* contractive:  ``penalty=lambda model, x, code: lam * jacobian_norm(model, x, code)``

Corruption and penalty act while training only; validation (``val_loss``, ``val_mse`` in the history)
and ``evaluate_mse`` measure the plain reconstruction of clean inputs, so every variant is compared on
the same footing. ``refine_lbfgs`` finishes a full-batch least-squares fit (the linear AE) with L-BFGS.

Stacked autoencoders (Bengio et al., NeurIPS 2006; Vincent et al., JMLR 2010) reuse the same loop:

1. train AE 1 on the inputs x: code h¹ = f₁(x), reconstruction g₁(h¹) ≈ x;
2. train AE 2 on AE 1's codes h¹ (AE 1 frozen): h² = f₂(h¹), g₂(h²) ≈ h¹; and so on;
3. put a classifier on the last code and fine-tune every layer with the labels.

``pretrain_layer`` trains layer k on the codes of the layers below, which only compute its inputs and
are not handed to the optimiser, so they cannot change; ``greedy_pretrain`` does every layer in
turn; ``fine_tune`` trains a whole classifier with cross-entropy.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.data import Batches, Split
from coursekit.device import seeded
from coursekit.engine.fit import History, fit
from coursekit.metrics.classification import accuracy
from coursekit.metrics.reconstruction import evaluate_mse
from coursekit.ops.corruption import Corrupt
from coursekit.ops.losses import reconstruction_loss
from coursekit.ops.penalties import Penalty


def train_autoencoder(
    model: nn.Module,
    split: Split,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    loss: Literal["mse", "bce"] = "mse",
    penalty: Penalty | None = None,
    corrupt: Corrupt | None = None,
    schedule: Literal["constant", "cosine"] = "constant",
    device: torch.device | str | None = None,
    progress: bool = False,
    seed: int = 0,
) -> History:
    """Train ``model`` (anything with ``encode`` and ``decode``) on ``split.x_train`` with Adam; return its History.

    Each step draws a mini-batch x, feeds the encoder x̃ = ``corrupt(x)`` (or x), and minimises
    ``reconstruction_loss(decode(code), x, loss) + penalty(model, x̃, code)`` with code = encode(x̃):
    the target is always the clean x. ``penalty(model, x, code)`` gets the encoder's input and its code
    and returns a scalar. ``schedule="cosine"`` anneals the learning rate from ``lr`` to 0 over the run.
    ``seed`` fixes the shuffling and the corruption noise (seed the model's initialisation yourself,
    before building it). The history records per epoch ``train_loss`` (the objective J) and, on the
    clean validation images, ``val_loss`` (L alone) and ``val_mse`` (squared error per pixel). The
    corruption noise is drawn inside ``seeded(seed)``: the caller's random state is left as it was.
    """

    def objective(model: nn.Module, batch: tuple[torch.Tensor]) -> torch.Tensor:
        x = batch[0]
        x_in = corrupt(x) if corrupt is not None and model.training else x
        code = model.encode(x_in)
        value = reconstruction_loss(model.decode(code).view_as(x), x, loss)
        if penalty is not None and model.training:
            value = value + penalty(model, x_in, code)
        return value

    train_batches = Batches(split.x_train, batch_size=batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(train_batches))
    elif schedule == "constant":
        scheduler = None
    else:
        raise ValueError(f"unknown schedule {schedule!r}: use 'constant' or 'cosine'")
    with seeded(seed):
        return fit(model, train_batches, objective, epochs=epochs, optimizer=optimizer,
                   val_loader=Batches(split.x_val, batch_size=1024, shuffle=False),
                   metrics=lambda model, val: {"val_mse": evaluate_mse(model, split.x_val)},
                   scheduler=scheduler, device=device, progress=progress, desc="autoencoder")


def refine_lbfgs(model: nn.Module, x: torch.Tensor, *, max_iter: int = 500) -> float:
    """Minimise the full-batch squared error mean((model(x) − x)²) further with L-BFGS; return its final value.

    Adam's steps stall where the loss surface is a long, shallow valley (the linear AE's directions of
    nearly equal variance); a quasi-Newton method with a line search finishes the job in a few
    hundred iterations. It works in float64 and gives the model back in its own dtype. Meant for
    small data that fits in one batch, on the model's device.
    """
    first = next(model.parameters())
    dtype = first.dtype
    model.train().double()  # float32 round-off would stop the line search long before the optimum
    x = x.to(first.device, torch.float64)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter, history_size=50,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = F.mse_loss(model(x), x)
        value.backward()
        return value

    optimizer.step(closure)
    model.eval()
    with torch.no_grad():
        value = float(F.mse_loss(model(x), x))
    model.to(dtype)
    return value


@torch.no_grad()
def _codes(stack: nn.Module, x: torch.Tensor, depth: int, batch_size: int = 2048) -> torch.Tensor:
    """h^depth for every row of x, computed on the stack's device and returned on the CPU."""
    stack.eval()
    device = next(stack.parameters()).device
    return torch.cat([stack.encode(x[i:i + batch_size].to(device), depth).cpu()
                      for i in range(0, len(x), batch_size)])


def layer_inputs(stack: nn.Module, split: Split, k: int) -> Split:
    """The data layer k of a ``StackedAutoencoder`` trains on: every split passed through the (fixed)
    layers 0 … k−1; labels kept."""
    return Split(_codes(stack, split.x_train, k), split.y_train, _codes(stack, split.x_val, k), split.y_val,
                 _codes(stack, split.x_test, k), split.y_test)


def pretrain_layer(stack: nn.Module, k: int, split: Split, *, epochs: int, lr: float = 1e-2,
                   batch_size: int = 64, penalty: Penalty | None = None, corrupt: Corrupt | None = None,
                   device: torch.device | str | None = None, progress: bool = False, seed: int = 0) -> History:
    """Greedy step k: train (f_k, g_k) of a ``StackedAutoencoder`` to reconstruct the codes of layers 0 … k−1.

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


def greedy_pretrain(stack: nn.Module, split: Split, *, epochs: int, lr: float = 1e-2, batch_size: int = 64,
                    device: torch.device | str | None = None, progress: bool = False,
                    seed: int = 0) -> list[History]:
    """Pretrain every layer in turn (AE 1 on x, AE 2 on AE 1's codes, ...); one History per layer."""
    return [pretrain_layer(stack, k, split, epochs=epochs, lr=lr, batch_size=batch_size, device=device,
                           progress=progress, seed=seed) for k in range(stack.depth)]


def fine_tune(model: nn.Module, split: Split, *, epochs: int, lr: float = 3e-3, batch_size: int = 64,
              weight_decay: float = 0.0, device: torch.device | str | None = None, progress: bool = False,
              seed: int = 0, limit: int | None = None) -> History:
    """Train every parameter of ``model`` (a classifier giving logits) with cross-entropy on the training labels.

    The same loop serves the pretrained stack, the same architecture from random initialisation and a
    linear classifier on raw pixels. ``limit`` keeps only the first ``limit`` labelled training
    examples (the few-labels setting where pretraining on all images pays off). The history records
    ``val_accuracy`` per epoch.
    """
    x, y = split.x_train.flatten(1), split.y_train
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x_val = split.x_val.flatten(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    batches = Batches(x, y, batch_size=min(batch_size, len(x)), seed=seed)
    with seeded(seed):
        return fit(model, batches, lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]), epochs=epochs,
                   optimizer=optimizer, val_loader=Batches(x_val, split.y_val, batch_size=2048, shuffle=False),
                   metrics=lambda model, val: {"val_accuracy": accuracy(model, x_val, split.y_val)},
                   device=device, progress=progress, desc="fine-tune")
