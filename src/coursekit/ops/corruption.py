"""Corruptions q(x̃ | x) for the denoising autoencoder (Vincent et al., ICML 2008).

The encoder sees a corrupted x̃, drawn afresh for every batch, and the loss still targets the clean x.
``corrupt(x, kind, level)`` draws x̃; ``Corruption(kind, level)`` plugs into
``coursekit.engine.train_autoencoder`` as ``corrupt=``. Level 0 is the identity (the plain AE).
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

CorruptionKind = Literal["gaussian", "masking", "salt_and_pepper"]
CORRUPTIONS = ("gaussian", "masking", "salt_and_pepper")
Corrupt = Callable[[torch.Tensor], torch.Tensor]

def uniform_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(0, 1) noise shaped like x, from ``generator`` (drawn on the generator's device) or the global RNG."""
    if generator is None:
        return torch.rand_like(x)
    return torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def normal_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """N(0, 1) noise shaped like x, from ``generator`` (drawn on the generator's device) or the global RNG."""
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def _check_corruption(kind: str, level: float) -> None:
    """Raise ValueError unless ``kind`` is one of CORRUPTIONS and ``level`` is valid for it."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}: use one of {CORRUPTIONS}")
    if level < 0 or (kind != "gaussian" and level > 1):
        raise ValueError(f"corruption level must be in [0, 1] (σ ≥ 0 for gaussian), got {level}")


def corrupt(x: torch.Tensor, kind: CorruptionKind, level: float,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw x̃ ~ q(x̃ | x), a fresh random corruption of the images x (pixels in [0, 1]).

    * ``"gaussian"``: x̃ = clip(x + σ ε, 0, 1), ε ~ N(0, I), σ = ``level``;
    * ``"masking"``: each pixel is set to 0 with probability ``level`` (masking noise);
    * ``"salt_and_pepper"``: each pixel, with probability ``level``, is set to 0 or 1 (a fair coin).

    ``level = 0`` returns x itself: no corruption at all, so the denoising AE is the plain AE.
    """
    _check_corruption(kind, level)
    if level == 0:
        return x
    if kind == "gaussian":
        return (x + level * normal_like(x, generator)).clamp(0.0, 1.0)
    hit = uniform_like(x, generator) < level
    if kind == "masking":
        return x.masked_fill(hit, 0.0)
    salt = (uniform_like(x, generator) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


class Corruption:
    """``corrupt=`` for ``train_autoencoder``: ``Corruption("masking", 0.3)(x)`` draws a new x̃ at every call.

    ``train_autoencoder`` calls it once per training batch, so every epoch sees new corruptions.
    """

    def __init__(self, kind: CorruptionKind, level: float, generator: torch.Generator | None = None):
        _check_corruption(kind, level)  # now, not at the first batch (and without drawing from the RNG)
        self.kind, self.level, self.generator = kind, level, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return corrupt(x, self.kind, self.level, self.generator)

    def __repr__(self) -> str:
        return f"Corruption({self.kind!r}, {self.level})"
