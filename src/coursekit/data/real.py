"""Real datasets through torchvision, read from a folder the user names; nothing is downloaded unless
``download=True`` is passed.

``load_mnist(root, "mnist")`` and ``load_mnist(root, "fashion")`` give the same ``Split`` as the
digits: pixels in [0, 1], a seeded validation split taken from the official training set, and the
official test set.
"""

from __future__ import annotations

from pathlib import Path

import torch

from coursekit.data.digits import Split

_MNIST_LIKE = {"mnist": "MNIST", "fashion": "FashionMNIST"}  # torchvision's classes, imported when used
FASHION_CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle boot")


def load_mnist(root: str | Path, kind: str = "mnist", *, download: bool = False, flat: bool = True,
               val_fraction: float = 1 / 6, seed: int = 0, limit: int | None = None) -> Split:
    """Load MNIST (``kind="mnist"``) or Fashion-MNIST (``kind="fashion"``) from ``root``.

    torchvision looks for the four IDX files under ``root/MNIST/raw`` (or ``root/FashionMNIST/raw``).
    A missing folder raises ``FileNotFoundError`` naming the place; ``download=True`` fetches the
    files (needs a network). ``limit`` keeps the first ``limit`` training examples.
    """
    if kind not in _MNIST_LIKE:
        raise ValueError(f"unknown kind {kind!r}: use one of {sorted(_MNIST_LIKE)}")
    from torchvision import datasets  # slow to import: only when a real dataset is asked for

    cls = getattr(datasets, _MNIST_LIKE[kind])
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as err:
        raw = Path(root) / cls.__name__ / "raw"
        raise FileNotFoundError(
            f"{cls.__name__} not found under {raw} (expected the IDX files "
            f"{', '.join(name.removesuffix('.gz') for name, _ in cls.resources)}): pass download=True "
            "on a machine with a network, or copy the files there") from err

    def tensors(ds):
        x = ds.data.float().div(255.0)
        return (x.flatten(1) if flat else x.unsqueeze(1)), ds.targets.long()

    x, y = tensors(train)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = round(len(x) * val_fraction)
    val_idx, train_idx = order[:n_val], order[n_val:]
    if limit is not None:
        train_idx = train_idx[:limit]
    x_test, y_test = tensors(test)
    classes = FASHION_CLASSES if kind == "fashion" else tuple("0123456789")
    return Split(x[train_idx], y[train_idx], x[val_idx], y[val_idx], x_test, y_test, name=kind, classes=classes)
