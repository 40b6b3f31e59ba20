"""The penalties of the regularised autoencoders: sparse (KL on ρ̂) and contractive (Jacobian norm).

Both keep the plain autoencoder and add a term to what ``coursekit.engine.train_autoencoder``
minimises; each ``*_penalty`` factory returns a ``penalty(model, x, code)`` to pass as ``penalty=``.

* **sparse** (Ng, *Sparse autoencoder*, CS294A notes, 2011): J_S = J + β Σ_j KL(ρ ‖ ρ̂_j), where ρ̂_j is
  the mean activation of code unit j. ``rho_hat`` estimates it on one batch; ``dataset_rho_hat``
  makes the lecture's pass over the whole training set.
* **contractive** (Rifai et al., ICML 2011): J_C = J + λ ‖J_f(x)‖²_F. For one sigmoid layer
  h = s(Wx + b) the closed form is ``contractive_penalty_sigmoid(W, h)``; ``jacobian_frobenius``
  computes it by autograd for any encoder; ``code_sensitivity`` measures it by finite differences.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from coursekit.ops.corruption import normal_like

Penalty = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]




def rho_hat(code: torch.Tensor) -> torch.Tensor:
    """ρ̂_j = (1/m) Σ_i a_j(x⁽ⁱ⁾): the mean activation of each code unit over a batch of m codes, (m, k) → (k,)."""
    if code.dim() != 2:
        raise ValueError(f"rho_hat expects a batch of codes (m, k), got shape {tuple(code.shape)}")
    return code.mean(0)


@torch.no_grad()
def dataset_rho_hat(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """ρ̂ over a whole dataset (the lecture's forward pass on all the training set), in float64 on the CPU.

    ``model`` is anything with ``encode``; it runs in eval mode on its own device.
    """
    model.eval()
    device = next(model.parameters()).device
    total = None
    for start in range(0, len(x), batch_size):
        code = model.encode(x[start:start + batch_size].to(device)).double().sum(0).cpu()
        total = code if total is None else total + code
    return total / len(x)


def kl_sparsity(rho: float, rho_hat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Σ_j KL(ρ ‖ ρ̂_j) = Σ_j [ρ log(ρ/ρ̂_j) + (1 − ρ) log((1 − ρ)/(1 − ρ̂_j))], a scalar.

    KL between Bernoulli(ρ) and Bernoulli(ρ̂_j): 0 exactly when ρ̂_j = ρ, growing as ρ̂_j moves away.
    It needs ρ̂_j in (0, 1), i.e. sigmoid codes; ρ̂ is clamped to [eps, 1 − eps] before the logs so a
    saturated unit gives a large finite value rather than inf.
    """
    if not 0.0 < rho < 1.0:
        raise ValueError(f"rho must be in (0, 1), got {rho}")
    rho_hat = rho_hat.clamp(eps, 1.0 - eps)
    rho_t = torch.full_like(rho_hat, rho)  # same tensor arithmetic on both sides: KL(ρ‖ρ) is exactly 0
    return (rho_t * torch.log(rho_t / rho_hat) + (1 - rho_t) * torch.log((1 - rho_t) / (1 - rho_hat))).sum()


def sparse_penalty(rho: float, beta: float) -> Penalty:
    """``penalty=`` for ``train_autoencoder``: β Σ_j KL(ρ ‖ ρ̂_j) with ρ̂ the mean code of the current batch.

    With mini-batches ρ̂ is a per-batch estimate; with ``batch_size = len(x_train)`` (full batch) it
    is the training-set mean the lecture asks for.
    """
    if not 0.0 < rho < 1.0:
        raise ValueError(f"rho must be in (0, 1), got {rho}")

    def penalty(model: nn.Module, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return beta * kl_sparsity(rho, rho_hat(code))

    return penalty


def contractive_penalty_sigmoid(W: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """‖J_f(x)‖²_F = Σ_j [h_j(1 − h_j)]² Σ_i W_ji² for one sigmoid layer h = s(Wx + b).

    ``W`` is the encoder's weight (k × n, as ``nn.Linear`` stores it), ``h`` its codes (k) or (m, k);
    returns one value per example (a scalar for one code). Only valid for that architecture: ∂h_j/∂x_i
    = h_j (1 − h_j) W_ji uses the sigmoid's derivative s' = s(1 − s).
    """
    if h.shape[-1] != W.shape[0]:
        raise ValueError(f"W has {W.shape[0]} rows (code units) but h has {h.shape[-1]} entries")
    return ((h * (1 - h)) ** 2) @ (W ** 2).sum(1)


def jacobian_frobenius(encoder: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       create_graph: bool = False) -> torch.Tensor:
    """‖J_f(x)‖²_F = Σ_ij (∂f(x)_j / ∂x_i)² for any encoder f, by autograd; one value per example (m,).

    ``x`` is a batch (m, n) of inputs that the encoder treats independently (no batch norm), so the
    gradient of Σ_examples f(x)_j with respect to x gives row j of every example's Jacobian at once:
    k backward passes for a k-unit code. ``create_graph=True`` keeps the graph, so the result can be
    minimised (the contractive penalty for encoders without a closed form).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        code = encoder(x).flatten(1)
        total = torch.zeros(len(x), dtype=code.dtype, device=code.device)
        for j in range(code.shape[1]):
            (row,) = torch.autograd.grad(code[:, j].sum(), x, create_graph=create_graph, retain_graph=True)
            total = total + row.flatten(1).pow(2).sum(1)
    return total


def _is_one_sigmoid_layer(encoder: nn.Module) -> bool:
    return (isinstance(encoder, nn.Sequential) and len(encoder) == 2 and isinstance(encoder[0], nn.Linear)
            and isinstance(encoder[1], nn.Sigmoid))


def contractive_penalty(lam: float, closed_form: bool | None = None) -> Penalty:
    """``penalty=`` for ``train_autoencoder``: λ · mean over the batch of ‖J_f(x)‖²_F.

    Uses the closed form when the model's ``encoder`` is one ``Linear`` + ``Sigmoid`` (``closed_form``
    None or True), and autograd (``jacobian_frobenius``, k extra backward passes) otherwise.
    """
    def penalty(model: nn.Module, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        use_closed = _is_one_sigmoid_layer(model.encoder) if closed_form is None else closed_form
        if use_closed:
            if not _is_one_sigmoid_layer(model.encoder):
                raise ValueError("the closed form needs an encoder of one Linear layer and a Sigmoid")
            return lam * contractive_penalty_sigmoid(model.encoder[0].weight, code).mean()
        return lam * jacobian_frobenius(model.encode, x, create_graph=True).mean()

    return penalty


@torch.no_grad()
def code_sensitivity(encoder: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 0.05,
                     repeats: int = 8, generator: torch.Generator | None = None) -> float:
    """Mean ‖f(x + δ) − f(x)‖ / ‖δ‖ over random δ of norm ``eps``: how far the code moves per unit of input change.

    A finite-difference view of the Jacobian: for small ``eps`` it tends to the mean of ‖J_f(x) u‖
    over random unit vectors u, i.e. about ‖J_f(x)‖_F / √n.
    """
    code = encoder(x).flatten(1)
    ratios = []
    for _ in range(repeats):
        delta = normal_like(x, generator)
        delta = eps * delta / delta.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
        ratios.append((encoder(x + delta).flatten(1) - code).norm(dim=1) / eps)
    return float(torch.stack(ratios).double().mean())
