"""MNIST and Fashion-MNIST from their original IDX files, read from a folder the user names; nothing is
downloaded.

``load_mnist(root, "mnist")`` and ``load_mnist(root, "fashion")`` give the same ``Split`` as the
digits: pixels in [0, 1], a seeded validation split taken from the official training set, and the
official test set. The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-...``), gzipped (``.gz``, as distributed) or not, are looked for where torchvision keeps them,
``root/MNIST/raw`` or ``root/FashionMNIST/raw``, and where Debian's packages put them,
``root/mnist`` or ``root/fashion-mnist`` (``dataset-fashion-mnist`` installs
``/usr/share/datasets/fashion-mnist/*.gz``). ``read_idx`` checks each file before trusting it: its magic
number, its dimensions and that its length matches them; a broken file is an ``InvalidDataFile`` naming
the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from coursekit.data.digits import Split
from coursekit.errors import UsageError

# torchvision's folder under ROOT (``ROOT/NAME/raw``), then Debian's (``ROOT/NAME``).
FOLDERS = {"mnist": ("MNIST/raw", "mnist"), "fashion": ("FashionMNIST/raw", "fashion-mnist")}
NAMES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801  # unsigned bytes, 3 dimensions / 1 dimension
FASHION_CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle boot")


class InvalidDataFile(UsageError):
    """A dataset file that is not what its name says: the message names the file and the problem."""


def find_idx_files(root: str | Path, kind: str) -> list[Path]:
    """The four IDX files of ``kind`` under ``root`` (first folder of ``FOLDERS[kind]`` that has all four,
    each as ``NAME`` or ``NAME.gz``); ``FileNotFoundError`` naming the places looked at otherwise."""
    if kind not in FOLDERS:
        raise ValueError(f"unknown kind {kind!r}: use one of {sorted(FOLDERS)}")
    looked = []
    for sub in FOLDERS[kind]:
        folder = Path(root) / sub
        found = [next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None) for name in FILES]
        if all(found):
            return found  # type: ignore[return-value]
        looked.append(str(folder))
    debian = (", or install Debian's dataset-fashion-mnist and use root /usr/share/datasets"
              if kind == "fashion" else "")
    raise FileNotFoundError(f"{NAMES[kind]} not found under root {root}: none of {' or '.join(looked)} holds "
                            f"the four IDX files {', '.join(FILES)} (each may end in .gz); copy them there{debian}")


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """The uint8 array of one IDX file (gzipped when its name ends in ``.gz``), checked: ``magic`` (0x803 for
    images N×H×W, 0x801 for labels N), and exactly as many bytes as its dimensions say."""
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise InvalidDataFile(f"{path}: not a complete gzip file ({err}): the file is truncated or corrupted") from err
    if len(data) < 4:
        raise InvalidDataFile(f"{path}: {len(data)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        what = "images (0x00000803)" if magic == IMAGE_MAGIC else "labels (0x00000801)"
        raise InvalidDataFile(f"{path}: magic number 0x{found:08x}, expected {what}: not an IDX file of that kind")
    ndim = magic & 0xFF
    if len(data) < 4 + 4 * ndim:
        raise InvalidDataFile(f"{path}: the header ends before its {ndim} dimension(s)")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise InvalidDataFile(f"{path}: the header says {' x '.join(map(str, shape))} = {int(np.prod(shape)):,} "
                              f"bytes of data, the file holds {len(body):,}: it is truncated or padded")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def read_mnist_files(root: str | Path, kind: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train images, train labels), (test images, test labels) of ``kind`` under ``root``, each pair checked
    to hold as many labels as images, of one image size, with labels 0-9."""
    paths = find_idx_files(root, kind)
    pairs = []
    for images_path, labels_path in (paths[:2], paths[2:]):
        images, labels = read_idx(images_path, IMAGE_MAGIC), read_idx(labels_path, LABEL_MAGIC)
        if len(images) != len(labels):
            raise InvalidDataFile(f"{labels_path}: {len(labels):,} labels for the {len(images):,} images of "
                                  f"{images_path.name}: the two files do not belong together")
        if labels.size and labels.max() > 9:
            raise InvalidDataFile(f"{labels_path}: label {int(labels.max())} found, the classes are 0-9")
        pairs.append((images, labels))
    if pairs[0][0].shape[1:] != pairs[1][0].shape[1:]:
        raise InvalidDataFile(f"{paths[2]}: test images of {pairs[1][0].shape[1:]} pixels, training images of "
                              f"{pairs[0][0].shape[1:]}")
    return pairs[0], pairs[1]


def load_mnist(root: str | Path, kind: str = "mnist", *, flat: bool = True, val_fraction: float = 1 / 6,
               seed: int = 0, limit: int | None = None) -> Split:
    """Load MNIST (``kind="mnist"``) or Fashion-MNIST (``kind="fashion"``) from ``root`` (see the module's doc).

    ``limit`` keeps the first ``limit`` training examples (after the seeded validation split is set aside).
    """
    train, test = read_mnist_files(root, kind)

    def tensors(pair):
        x = torch.from_numpy(pair[0].copy()).float().div(255.0)
        return (x.flatten(1) if flat else x.unsqueeze(1)), torch.from_numpy(pair[1].astype(np.int64))

    x, y = tensors(train)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = round(len(x) * val_fraction)
    val_idx, train_idx = order[:n_val], order[n_val:]
    if limit is not None:
        train_idx = train_idx[:limit]
    x_test, y_test = tensors(test)
    classes = FASHION_CLASSES if kind == "fashion" else tuple("0123456789")
    return Split(x[train_idx], y[train_idx], x[val_idx], y[val_idx], x_test, y_test, name=kind, classes=classes)
