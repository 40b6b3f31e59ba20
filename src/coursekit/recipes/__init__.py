"""Training recipes behind ``coursekit train NAME``: one function per model that builds it, trains it on
the default data and returns its final metrics.

A recipe module registers its recipes with ``@recipe(...)``; the command line, the chapters' checkpoint
code and the tests all look them up in ``RECIPES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from coursekit.train import History


@dataclass
class TrainConfig:
    """What ``coursekit train`` was asked for; ``None`` means the recipe's default."""

    quick: bool = False
    epochs: int | None = None
    code_size: int | None = None
    seed: int = 0
    device: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    data: str = "default"
    data_root: str | None = None
    progress: bool = True

    def get(self, name: str, default):
        value = getattr(self, name)
        return default if value is None else value


@dataclass
class TrainResult:
    """A trained ``model``, the builder arguments that rebuild it (``config``), metrics and history."""

    model: nn.Module
    config: dict[str, Any]
    metrics: dict[str, float]
    history: History = field(default_factory=History)


@dataclass
class Recipe:
    name: str
    help: str
    run: Callable[[TrainConfig], TrainResult]
    build: Callable[..., nn.Module]
    """Rebuilds the (untrained) model from a ``TrainResult.config``, e.g. to load a checkpoint."""


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, help: str, build: Callable[..., nn.Module]):
    """Register the decorated ``run(config) -> TrainResult`` as ``coursekit train NAME``."""
    def register(run: Callable[[TrainConfig], TrainResult]):
        if name in RECIPES:
            raise ValueError(f"recipe {name!r} registered twice")
        RECIPES[name] = Recipe(name=name, help=help, run=run, build=build)
        return run
    return register


# Importing the modules registers their recipes, in the lecture's order (as `coursekit train --help` lists them).
from coursekit.recipes import autoencoders, regularized, segmentation, detection  # noqa: E402,F401,I001
