"""Small real datasets in their real on-disk formats, for the tests of the loaders and of the data switch.

``write_mnist`` writes MNIST's (or Fashion-MNIST's) four uncompressed IDX files where torchvision looks
for them; the images are the bundled 8×8 digits drawn at 20×20 and centred on 28×28, as MNIST's are, so
the chapters have real digits to learn. ``write_pets`` writes Oxford-IIIT Pet's JPEG images, trimap PNGs
(1 pet, 2 background, 3 border) and split lists; each photo shows a saturated ellipse, the "pet", on a
textured background.

    python tests/real_files.py ROOT      # both, for running the book on them by hand
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

MNIST_FOLDERS = {"mnist": "MNIST", "fashion": "FashionMNIST"}


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: magic 0x0000080N (unsigned bytes, N dims), big-endian sizes, then the bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x08 << 8 | array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(">u1").tobytes())


def mnist_like_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images (n, 28, 28) and labels: scikit-learn's digits drawn at 20×20, centred, as MNIST."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pick = np.random.default_rng(seed).choice(len(bunch.images), n, replace=n > len(bunch.images))
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, k in enumerate(pick):
        small = Image.fromarray((bunch.images[k] * 255 / 16).astype(np.uint8))
        images[i, 4:24, 4:24] = np.asarray(small.resize((20, 20), Image.BILINEAR))
    return images, bunch.target[pick].astype(np.uint8)


def write_mnist(root: Path, kind: str = "mnist", n_train: int = 480, n_test: int = 160) -> Path:
    """The four IDX files under ``root/MNIST/raw`` (or ``FashionMNIST``); returns ``root``."""
    raw = Path(root) / MNIST_FOLDERS[kind] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = mnist_like_digits(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return Path(root)


def pet_photo(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB photo (uint8) with an ellipse "pet" and its trimap: 1 pet, 2 background, 3 a 2-pixel border."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    ry, rx = rng.uniform(0.2, 0.35) * height, rng.uniform(0.2, 0.35) * width
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    photo = rng.integers(60, 180, (height, width, 3)).astype(np.float64)
    photo[r < 1] = rng.integers(0, 256, 3) * 0.6 + photo[r < 1] * 0.4
    trimap = np.full((height, width), 2, dtype=np.uint8)
    trimap[r < 1 + 2 / min(ry, rx)] = 3
    trimap[r < 1 - 2 / min(ry, rx)] = 1
    return photo.astype(np.uint8), trimap


def write_pets(root: Path, n_trainval: int = 80, n_test: int = 32, size: tuple[int, int] = (48, 64)) -> Path:
    """Oxford-IIIT Pet's layout under ``root/oxford-iiit-pet``: images, trimaps and the two split lists."""
    base = Path(root) / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    seed = 0
    for split, n in (("trainval", n_trainval), ("test", n_test)):
        lines = []
        for i in range(n):
            breed, species = ("Abyssinian", 1) if i % 2 else ("beagle", 2)
            name = f"{breed}_{split}_{i}"
            photo, trimap = pet_photo(*size, seed=seed)
            seed += 1
            Image.fromarray(photo).save(base / "images" / f"{name}.jpg", quality=95)
            Image.fromarray(trimap, mode="L").save(base / "annotations" / "trimaps" / f"{name}.png")
            lines.append(f"{name} {species} {species} 1")  # "<image> <class id> <species> <breed id>"
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return Path(root)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    write_mnist(target, "mnist")
    write_mnist(target, "fashion")
    write_pets(target)
    print(f"MNIST, Fashion-MNIST and Oxford-IIIT Pet written under {target}")
