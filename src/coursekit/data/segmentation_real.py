"""Real segmentation datasets through torchvision: Oxford-IIIT Pet and Pascal VOC, from a root the user names.

Both give what ``ShapesSegmentation`` gives, so every Part II model and metric takes them unchanged:
``(image, mask)`` with ``image`` a float tensor [3, H, W] in [0, 1] and ``mask`` a long tensor [H, W] of
class indices, with ``IGNORE_INDEX`` (255) marking pixels that the loss and the metrics must skip.
Images are resized bilinearly and masks by nearest neighbour (never interpolate class labels) to
``size``; ``size=None`` keeps each image's own size. Nothing is downloaded unless ``download=True``.

On disk, the layouts torchvision reads (``root`` is the folder you pass):

    root/oxford-iiit-pet/images/<name>.jpg
    root/oxford-iiit-pet/annotations/trimaps/<name>.png        trimap: 1 pet, 2 background, 3 border
    root/oxford-iiit-pet/annotations/{trainval,test}.txt       lines "<name> <class> <species> <breed>"

    root/VOCdevkit/VOC2012/JPEGImages/<name>.jpg
    root/VOCdevkit/VOC2012/SegmentationClass/<name>.png        palette PNG: 0..20 classes, 255 boundary
    root/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from coursekit.ops.losses import IGNORE_INDEX

PET_CLASSES = ("background", "pet")
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
_BORDER = {"ignore": IGNORE_INDEX, "pet": 1, "background": 0}


def _size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``size`` as (height, width): an int means a square."""
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    return height, width


def _to_tensors(image: Image.Image, mask: Image.Image,
                size: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB image → float [3, H, W] in [0, 1]; label image → long [H, W] of its raw values (palette indices)."""
    if mask.mode not in ("L", "P", "I", "I;16"):
        raise ValueError(f"a segmentation mask must be a single-channel (L or palette) image, got mode {mask.mode!r}")
    if size is not None:
        height, width = size
        image = image.resize((width, height), Image.BILINEAR)
        mask = mask.resize((width, height), Image.NEAREST)  # class labels must not be blended
    x = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).float().div(255.0)
    y = torch.from_numpy(np.array(mask, dtype=np.int64))
    if x.shape[1:] != y.shape:
        raise ValueError(f"image {tuple(x.shape[1:])} and mask {tuple(y.shape)} differ in size")
    return x, y


def _missing(root: Path, what: str, layout: str, paths: Sequence[Path]) -> FileNotFoundError:
    absent = ", ".join(str(p) for p in paths if not p.exists())
    return FileNotFoundError(f"{what} not found under root {root} (missing: {absent}). Expected the layout\n{layout}\n"
                             "Pass the folder that holds it as root, or download=True on a machine with a network.")


class OxfordPetSegmentation(Dataset):
    """Oxford-IIIT Pet (Parkhi et al., 2012) as pet-vs-background segmentation, from ``root``.

    The trimaps mark each pixel 1 (pet), 2 (background) or 3 (the uncertain border around the pet).
    They become classes 0 = background, 1 = pet; the border becomes ``IGNORE_INDEX`` (255) by default,
    as the border is where annotators could not decide, or class ``border="pet"`` / ``"background"``.
    ``split`` is ``"trainval"`` (3,680 images) or ``"test"`` (3,669).
    """

    classes = PET_CLASSES
    num_classes = len(PET_CLASSES)
    ignore_index = IGNORE_INDEX
    LAYOUT = ("  ROOT/oxford-iiit-pet/images/<name>.jpg\n"
              "  ROOT/oxford-iiit-pet/annotations/trimaps/<name>.png\n"
              "  ROOT/oxford-iiit-pet/annotations/trainval.txt and test.txt")

    def __init__(self, root: str | Path, split: str = "trainval", size: int | Sequence[int] | None = 128,
                 border: str = "ignore", download: bool = False):
        if split not in ("trainval", "test"):
            raise ValueError(f"unknown split {split!r}: use 'trainval' or 'test'")
        if border not in _BORDER:
            raise ValueError(f"unknown border {border!r}: use one of {list(_BORDER)}")
        self.root, self.split, self.size = Path(root), split, _size(size)
        base = self.root / "oxford-iiit-pet"
        needed = [base / "images", base / "annotations" / "trimaps", base / "annotations" / f"{split}.txt"]
        if not download and not all(p.exists() for p in needed):
            raise _missing(self.root, "Oxford-IIIT Pet", self.LAYOUT, needed)
        from torchvision import datasets  # imported here: torchvision takes seconds to import

        self.dataset = datasets.OxfordIIITPet(str(self.root), split=split, target_types="segmentation",
                                              download=download)
        # trimap value → class: index 0 is unused, 1 pet, 2 background, 3 border
        self._lookup = torch.tensor([IGNORE_INDEX, 1, 0, _BORDER[border]] + [IGNORE_INDEX] * 252)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, trimap = self.dataset[index]
        x, y = _to_tensors(image, trimap, self.size)
        return x, self._lookup[y]


class PascalVOCSegmentation(Dataset):
    """Pascal VOC semantic segmentation (Everingham et al., 2010), 21 classes, from ``root``.

    The class PNGs are palette images whose indices are the classes 0 (background) to 20, and 255 on
    the outlines and "difficult" regions, which stays ``IGNORE_INDEX``. ``image_set`` is ``"train"``,
    ``"val"`` or ``"trainval"`` (1,464 / 1,449 / 2,913 images for 2012).
    """

    classes = VOC_CLASSES
    num_classes = len(VOC_CLASSES)
    ignore_index = IGNORE_INDEX

    def __init__(self, root: str | Path, image_set: str = "train", year: str = "2012",
                 size: int | Sequence[int] | None = 256, download: bool = False):
        if image_set not in ("train", "val", "trainval"):
            raise ValueError(f"unknown image_set {image_set!r}: use 'train', 'val' or 'trainval'")
        self.root, self.image_set, self.size = Path(root), image_set, _size(size)
        base_dir = ("TrainVal/VOCdevkit/VOC2011" if year == "2011" else f"VOCdevkit/VOC{year}")
        base = self.root / base_dir
        needed = [base / "JPEGImages", base / "SegmentationClass",
                  base / "ImageSets" / "Segmentation" / f"{image_set}.txt"]
        if not download and not all(p.exists() for p in needed):
            layout = (f"  ROOT/{base_dir}/JPEGImages/<name>.jpg\n"
                      f"  ROOT/{base_dir}/SegmentationClass/<name>.png\n"
                      f"  ROOT/{base_dir}/ImageSets/Segmentation/{image_set}.txt")
            raise _missing(self.root, f"Pascal VOC {year} segmentation", layout, needed)
        from torchvision import datasets

        self.dataset = datasets.VOCSegmentation(str(self.root), year=year, image_set=image_set, download=download)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.dataset[index]
        return _to_tensors(image, mask, self.size)


def load_segmentation(name: str, root: str | Path, split: str = "train", size: int | Sequence[int] | None = 128,
                      download: bool = False) -> Dataset:
    """``"pets"`` or ``"voc"`` by name; ``split`` is ``"train"`` or ``"test"`` (VOC's test is its val set).

    Pets: train → trainval, test → test. VOC 2012: train → train, test → val (VOC's test labels are not
    public).
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: use 'train' or 'test'")
    if name == "pets":
        return OxfordPetSegmentation(root, "trainval" if split == "train" else "test", size=size, download=download)
    if name == "voc":
        return PascalVOCSegmentation(root, "train" if split == "train" else "val", size=size, download=download)
    raise ValueError(f"unknown dataset {name!r}: use 'pets' or 'voc'")
