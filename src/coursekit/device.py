"""Where the code runs, how it is seeded, and how much work it does (quick mode).

* ``get_device()`` is the one place that picks the device: ``cuda`` > ``mps`` > ``cpu``, unless the
  environment variable ``COURSEKIT_DEVICE`` (or an explicit argument) names one. An entry point (the
  command line, a chapter's first cell) resolves it once and passes the ``torch.device`` down.
* ``seed_everything(seed)`` seeds Python, NumPy and torch: for entry points only. Library code that
  needs seeded randomness (a model's initialisation, a corruption) runs ``with seeded(seed):``, which
  restores the caller's random state afterwards, so a library call never resets the caller's RNG.
* ``COURSEKIT_ONEDNN=off`` turns PyTorch's oneDNN (MKL-DNN) CPU kernels off when ``get_device`` resolves the
  device, so convolutions take ATen's own CPU path: one of the CPU kernel paths that
  ``benchmarks/robustness.py`` checks the course's trainings on (with ``ONEDNN_MAX_CPU_ISA``).
* ``quick_mode()`` is true when ``COURSEKIT_QUICK=1``; ``budget(full, quick)`` picks a size by mode,
  so a chapter runs in seconds under tests and at full fidelity in the book build.

torch is imported by the functions that use it, so ``quick_mode`` and ``budget`` cost nothing: the
command line resolves a recipe's settings (and refuses a bad option) before torch is loaded.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from coursekit.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_ENV = "COURSEKIT_DEVICE"
ONEDNN_ENV = "COURSEKIT_ONEDNN"
QUICK_ENV = "COURSEKIT_QUICK"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def get_device(name: str | torch.device | None = None) -> torch.device:
    """Return the device to compute on: ``name``, else ``$COURSEKIT_DEVICE``, else cuda > mps > cpu.

    With ``$COURSEKIT_ONEDNN`` set to ``off`` it also turns oneDNN's CPU kernels off (see the module's doc).

    A ``torch.device`` passes through unchanged. Raises ``UsageError`` for an unknown name or one this
    machine lacks.
    """
    import torch

    if os.environ.get(ONEDNN_ENV, "").strip().lower() in _FALSE:
        torch.backends.mkldnn.enabled = False
    if isinstance(name, torch.device):
        return name
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
        raise UsageError(f"unknown device {name!r}: use cpu, cuda, cuda:N, mps or auto") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} was asked for, but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {name!r} was asked for, but MPS is not available on this machine")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same way.

    Call it at an entry point (a script, a chapter). Inside the package, use ``seeded``.
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block as if after ``seed_everything(seed)``, then give the caller its random state back.

    Python's, NumPy's and torch's (CPU and every initialised CUDA device) generators are saved, seeded,
    and restored on exit, so what the block draws repeats exactly and the caller's stream is untouched.
    """
    import numpy as np
    import torch

    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    seed_everything(seed)
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def quick_mode() -> bool:
    """True when ``$COURSEKIT_QUICK`` is set to 1/true/yes/on: small data and few epochs, for tests."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in _TRUE


def budget(full, quick):
    """Pick ``quick`` in quick mode and ``full`` otherwise (epochs, sample counts, image sizes...)."""
    return quick if quick_mode() else full
