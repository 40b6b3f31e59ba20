"""scikit-learn's bundled 8×8 digits as tensors in [0, 1], with a fixed, seeded train/val/test split.

``Split`` holds the train/val/test tensors of any in-memory dataset of the course (digits, MNIST,
shapes scenes with their masks); ``Split.loader`` batches one of them with ``Batches``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

from coursekit.data.batches import Batches


@dataclass
class Split:
    """Train/val/test tensors of one dataset: ``x_*`` inputs (e.g. images in [0, 1]), ``y_*`` labels or masks."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str = "digits"  # which dataset: digits, mnist, fashion, shapes, pets
    classes: tuple[str, ...] = tuple("0123456789")  # the names of the labels (or of the mask's classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """One image's (channels, height, width); flat vectors of D pixels are square grey images."""
        if self.x_train.dim() > 2:
            return tuple(self.x_train.shape[1:])
        side = math.isqrt(self.x_train.shape[1])
        if side * side != self.x_train.shape[1]:
            raise ValueError(f"{self.x_train.shape[1]} pixels per vector do not make a square image")
        return 1, side, side

    @property
    def pixels(self) -> int:
        """Numbers per image: what a dense autoencoder's input and output layers have (64 for the digits)."""
        return math.prod(self.image_shape)

    def dataset(self, split: str) -> TensorDataset:
        """The ``(x, y)`` TensorDataset of ``split`` ('train', 'val' or 'test')."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}: use 'train', 'val' or 'test'")
        return TensorDataset(getattr(self, f"x_{split}"), getattr(self, f"y_{split}"))

    def loader(self, split: str, batch_size: int = 64, shuffle: bool | None = None, augment: bool = False,
               seed: int = 0) -> Batches:
        """``(x, y)`` batches of ``split``; shuffled (reproducibly from ``seed``) by default for "train" only.

        ``augment`` flips and transposes images and masks together (``Batches``).
        """
        x, y = self.dataset(split).tensors
        shuffle = split == "train" if shuffle is None else shuffle
        return Batches(x, y, batch_size=batch_size, shuffle=shuffle, augment=augment, seed=seed)


def stack_pairs(dataset, indices) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(x, y)`` items of ``dataset`` at ``indices``, stacked into two tensors (a ``Split``'s halves)."""
    pairs = [dataset[i] for i in indices]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def load_digits_split(seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15,
                      flat: bool = True, limit: int | None = None) -> Split:
    """Load the 1,797 digits (pixels 0..16 scaled to [0, 1]) and split them, stratified by class.

    ``flat=True`` gives (N, 64) vectors for dense models, ``flat=False`` (N, 1, 8, 8) images for
    convolutional ones. The split depends only on ``seed``. ``limit`` keeps the first ``limit``
    training examples (quick mode).
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = round(len(idx) * test_fraction)
        n_val = round(len(idx) * val_fraction)
        parts["test"] += idx[:n_test].tolist()
        parts["val"] += idx[n_test:n_test + n_val].tolist()
        parts["train"] += idx[n_test + n_val:].tolist()
    tensors = {}
    for name, idx in parts.items():
        idx = rng.permutation(idx)
        if name == "train" and limit is not None:
            idx = idx[:limit]
        xs = torch.from_numpy(x[idx])
        tensors[f"x_{name}"] = xs if flat else xs.view(-1, 1, 8, 8)
        tensors[f"y_{name}"] = torch.from_numpy(y[idx])
    return Split(**tensors)
