"""The book's data switch: which images the chapters run on, read from ``$COURSEKIT_DATA``.

By default every chapter runs offline on data that ships or is generated: Part I on scikit-learn's
8×8 digits, Part II on our 64×64 shapes scenes. ``COURSEKIT_DATA`` names real datasets instead, one
per part, comma-separated, read from the folder ``$COURSEKIT_DATA_ROOT`` in torchvision's layout:

    COURSEKIT_DATA=mnist          Part I on MNIST's 28×28 digits (ROOT/MNIST/raw/...)
    COURSEKIT_DATA=fashion        Part I on Fashion-MNIST (ROOT/FashionMNIST/raw/..., or Debian's
                                  ROOT/fashion-mnist/*.gz: ROOT=/usr/share/datasets)
    COURSEKIT_DATA=pets           chapters 9-11 on Oxford-IIIT Pet at 128×128 (ROOT/oxford-iiit-pet/...)
    COURSEKIT_DATA=mnist,pets     both

A part that the variable does not name keeps its default. Nothing is downloaded: fetch the files once
with torchvision on a machine with a network (``datasets.MNIST(ROOT, download=True)``,
``datasets.FashionMNIST(ROOT, download=True)``, ``datasets.OxfordIIITPet(ROOT, download=True)``).

The chapters' budgets (epochs, steps) were set for about 1,250 training digits, so on MNIST they keep
``REAL_TRAIN`` training images and ``REAL_EVAL`` validation and test images: a chapter then takes
minutes on a GPU rather than hours. Pass ``limit`` to keep another number.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from coursekit.data.digits import Split, load_digits_split, stack_pairs
from coursekit.errors import UsageError

DATA_ENV, ROOT_ENV = "COURSEKIT_DATA", "COURSEKIT_DATA_ROOT"
IMAGES = ("digits", "mnist", "fashion")  # Part I, the first is the default
SCENES = ("shapes", "pets")  # Part II's semantic segmentation, the first is the default
REAL_TRAIN, REAL_EVAL = 5000, 2000
PETS_SIZE = 128  # the stride-32 score map of FCN-32s is then 4×4


def chosen() -> dict[str, str]:
    """``{"images": ..., "scenes": ...}``: the datasets ``$COURSEKIT_DATA`` names, else the defaults."""
    picked = {"images": IMAGES[0], "scenes": SCENES[0]}
    named = {}
    for name in filter(None, (n.strip().lower() for n in os.environ.get(DATA_ENV, "").split(","))):
        part = "images" if name in IMAGES else "scenes" if name in SCENES else None
        if part is None:
            raise UsageError(f"{DATA_ENV}={os.environ[DATA_ENV]!r}: unknown dataset {name!r}; Part I takes "
                             f"{', '.join(IMAGES)}, Part II takes {', '.join(SCENES)} (comma-separated)")
        if part in named and named[part] != name:
            raise UsageError(f"{DATA_ENV} names two datasets for the same part: {named[part]} and {name}")
        named[part] = picked[part] = name
    return picked


def on_default_data(split: Split) -> bool:
    """True when ``split`` is the data the shipped records and checkpoints were made on (digits, shapes)."""
    return split.name in (IMAGES[0], SCENES[0])


def data_root() -> Path:
    """``$COURSEKIT_DATA_ROOT``, which must name an existing folder when a real dataset is chosen."""
    root = os.environ.get(ROOT_ENV)
    if not root:
        raise UsageError(f"{DATA_ENV}={os.environ.get(DATA_ENV)} needs {ROOT_ENV}, the folder that holds the "
                         "datasets in torchvision's layout (e.g. ROOT/MNIST/raw/train-images-idx3-ubyte)")
    if not Path(root).expanduser().is_dir():
        raise UsageError(f"{ROOT_ENV}={root!r} is not a folder")
    return Path(root).expanduser()


def _cap(split: Split, n_eval: int) -> Split:
    return replace(split, x_val=split.x_val[:n_eval], y_val=split.y_val[:n_eval],
                   x_test=split.x_test[:n_eval], y_test=split.y_test[:n_eval])


def load_images(seed: int = 0, *, flat: bool = True, limit: int | None = None) -> Split:
    """Part I's images: the 8×8 digits, or MNIST / Fashion-MNIST when ``$COURSEKIT_DATA`` names them.

    ``flat=True`` gives (N, D) vectors in [0, 1] (D = ``split.pixels``: 64 or 784), ``flat=False``
    (N, 1, H, W) images. ``limit`` keeps that many training images (real data: ``REAL_TRAIN`` unless
    given, and ``REAL_EVAL`` validation and test images).
    """
    name = chosen()["images"]
    if name == "digits":
        return load_digits_split(seed=seed, flat=flat, limit=limit)
    from coursekit.data.real import load_mnist

    split = load_mnist(data_root(), name, flat=flat, seed=seed, limit=REAL_TRAIN if limit is None else limit)
    return _cap(split, REAL_EVAL if limit is None else max(limit // 2, 1))


def load_scenes(n_train: int, n_val: int, n_test: int, seed: int = 0) -> Split:
    """Part II's segmentation scenes: 64×64 shapes, or Oxford-IIIT Pet at ``PETS_SIZE`` when chosen.

    Shapes are generated (``load_shapes_split``). Pets: ``n_train`` and ``n_val`` images drawn with
    ``seed`` from the trainval list, the first ``n_test`` of the test list; classes background and pet,
    the trimap's uncertain border ``IGNORE_INDEX`` (skipped by the losses and the metrics).
    """
    name = chosen()["scenes"]
    if name == "shapes":
        from coursekit.data.shapes import load_shapes_split

        return load_shapes_split(n_train, n_val, n_test, size=64, seed=seed)
    import torch

    from coursekit.data.segmentation_real import PET_CLASSES, OxfordPetSegmentation

    root = data_root()
    trainval, test = OxfordPetSegmentation(root, "trainval", PETS_SIZE), OxfordPetSegmentation(root, "test", PETS_SIZE)
    if n_train + n_val > len(trainval) or n_test > len(test):
        raise UsageError(f"Oxford-IIIT Pet under {root} has {len(trainval)} trainval and {len(test)} test images; "
                         f"asked for {n_train} + {n_val} and {n_test}")
    order = torch.randperm(len(trainval), generator=torch.Generator().manual_seed(seed)).tolist()
    return Split(*stack_pairs(trainval, order[:n_train]), *stack_pairs(trainval, order[n_train:n_train + n_val]),
                 *stack_pairs(test, range(n_test)), name="pets", classes=PET_CLASSES)
