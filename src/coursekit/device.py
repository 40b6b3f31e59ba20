"""Where the code runs, how it is seeded, and how much work it does (quick mode).

* ``get_device()`` is the one place that picks the device: ``cuda`` > ``mps`` > ``cpu``, unless the
  environment variable ``COURSEKIT_DEVICE`` (or an explicit argument) names one.
* ``seed_everything(seed)`` makes CPU runs repeatable.
* ``quick_mode()`` is true when ``COURSEKIT_QUICK=1``; ``budget(full, quick)`` picks a size by mode,
  so a chapter runs in seconds under tests and at full fidelity in the book build.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

DEVICE_ENV = "COURSEKIT_DEVICE"
QUICK_ENV = "COURSEKIT_QUICK"
_TRUE = {"1", "true", "yes", "on"}


def get_device(name: str | None = None) -> torch.device:
    """Return the device to compute on: ``name``, else ``$COURSEKIT_DEVICE``, else cuda > mps > cpu.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` for one this machine lacks.
    """
    name = name or os.environ.get(DEVICE_ENV) or None
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}: use cpu, cuda, cuda:N, mps or auto") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for, but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {name!r} was asked for, but MPS is not available on this machine")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def quick_mode() -> bool:
    """True when ``$COURSEKIT_QUICK`` is set to 1/true/yes/on: small data and few epochs, for tests."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in _TRUE


def budget(full, quick):
    """Pick ``quick`` in quick mode and ``full`` otherwise (epochs, sample counts, image sizes...)."""
    return quick if quick_mode() else full
