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
"""

from __future__ import annotations

from typing import Callable, Iterator, Literal

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.data import Split
from coursekit.device import seed_everything
from coursekit.train import History, fit

Penalty = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Corrupt = Callable[[torch.Tensor], torch.Tensor]


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, loss: Literal["mse", "bce"] = "mse") -> torch.Tensor:
    """L(x, x̂) averaged over pixels: (x̂ − x)² for ``"mse"``, −[x log x̂ + (1 − x) log(1 − x̂)] for ``"bce"``.

    ``"bce"`` needs x̂ in [0, 1] (a sigmoid output) and reads each target pixel as a bit probability.
    """
    if loss == "mse":
        return F.mse_loss(x_hat, x)
    if loss == "bce":
        return F.binary_cross_entropy(x_hat, x)
    raise ValueError(f"unknown loss {loss!r}: use 'mse' or 'bce'")


class TensorBatches:
    """Mini-batches ``(x,)``, or ``(x, y)`` with ``labels=y``, reshuffled every epoch from ``seed``: a light DataLoader.

    Indexing the tensors with a whole batch of indices at once is far cheaper than a DataLoader's
    item-by-item collation, which dominates for small images.
    """

    def __init__(self, x: torch.Tensor, batch_size: int, shuffle: bool = True, seed: int = 0,
                 labels: torch.Tensor | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if labels is not None and len(labels) != len(x):
            raise ValueError(f"{len(x)} inputs but {len(labels)} labels")
        self.tensors = (x,) if labels is None else (x, labels)
        self.x, self.batch_size, self.shuffle = x, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.randperm(len(self.x), generator=self.generator) if self.shuffle else None
        for start in range(0, len(self.x), self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
            yield tuple(t[index] for t in self.tensors)


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
    clean validation images, ``val_loss`` (L alone) and ``val_mse`` (squared error per pixel).
    """
    seed_everything(seed)

    def objective(model: nn.Module, batch: tuple[torch.Tensor]) -> torch.Tensor:
        x = batch[0]
        x_in = corrupt(x) if corrupt is not None and model.training else x
        code = model.encode(x_in)
        value = reconstruction_loss(model.decode(code).view_as(x), x, loss)
        if penalty is not None and model.training:
            value = value + penalty(model, x_in, code)
        return value

    train_batches = TensorBatches(split.x_train, batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(train_batches))
    elif schedule == "constant":
        scheduler = None
    else:
        raise ValueError(f"unknown schedule {schedule!r}: use 'constant' or 'cosine'")
    return fit(model, train_batches, objective, epochs=epochs, optimizer=optimizer,
               val_loader=TensorBatches(split.x_val, 1024, shuffle=False),
               metrics=lambda model, val: {"val_mse": evaluate_mse(model, val.x)},
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
