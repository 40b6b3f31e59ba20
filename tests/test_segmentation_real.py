"""Oxford-IIIT Pet and Pascal VOC loaders, on tiny files written in the datasets' real on-disk layout."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coursekit.data import (
    IGNORE_INDEX,
    OxfordPetSegmentation,
    PascalVOCSegmentation,
    ShapesSegmentation,
    load_segmentation,
)


def _photo(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, quality=95)
    return rgb


def _trimap(height: int, width: int) -> np.ndarray:
    """Background (2) with a pet (1) in the middle and a one-pixel border (3) around it, as the real trimaps."""
    t = np.full((height, width), 2, dtype=np.uint8)
    t[2:-2, 3:-3] = 3
    t[3:-3, 4:-4] = 1
    return t


@pytest.fixture
def pets_root(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    names = {"trainval": ["Abyssinian_1", "american_bulldog_10"], "test": ["Abyssinian_2"]}
    for split, ids in names.items():
        # the real files: "<image> <class id 1..37> <species 1 cat, 2 dog> <breed id>"
        lines = [f"{name} {1 if name.startswith('Aby') else 2} {1 if name.startswith('Aby') else 2} 1"
                 for name in ids]
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        for i, name in enumerate(ids):
            _photo(base / "images" / f"{name}.jpg", 12, 16, seed=i)
            Image.fromarray(_trimap(12, 16), mode="L").save(base / "annotations" / "trimaps" / f"{name}.png")
    return tmp_path


def _palette_png(path: Path, labels: np.ndarray) -> None:
    """A palette PNG as VOC ships them: pixel values are class indices, the palette only colours them."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[1:21] = np.random.default_rng(0).integers(0, 256, (20, 3))
    palette[255] = (224, 224, 192)  # VOC's colour of the "void" outline
    image.putpalette(palette.flatten().tolist())
    image.save(path)


@pytest.fixture
def voc_root(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / folder).mkdir(parents=True)
    ids = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033"]}
    for split, names in ids.items():
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    (base / "ImageSets" / "Segmentation" / "trainval.txt").write_text(
        "\n".join(ids["train"] + ids["val"]) + "\n")
    for i, name in enumerate(ids["train"] + ids["val"]):
        _photo(base / "JPEGImages" / f"{name}.jpg", 10, 14, seed=i)
        labels = np.zeros((10, 14), dtype=np.uint8)
        labels[2:8, 3:9] = 255  # outline
        labels[3:7, 4:8] = 15 if i % 2 == 0 else 1  # a person, or an aeroplane
        _palette_png(base / "SegmentationClass" / f"{name}.png", labels)
    return tmp_path


def test_pets_original_size_maps_trimap_to_classes(pets_root):
    ds = OxfordPetSegmentation(pets_root, "trainval", size=None)
    assert len(ds) == 2 and ds.num_classes == 2 and ds.classes == ("background", "pet")
    image, mask = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 12, 16)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert mask.dtype == torch.long and mask.shape == (12, 16)
    expected = torch.from_numpy(_trimap(12, 16)).long()
    assert torch.equal(mask == 1, expected == 1)                      # pet
    assert torch.equal(mask == 0, expected == 2)                      # background
    assert torch.equal(mask == IGNORE_INDEX, expected == 3)           # border ignored
    # the JPEG is read as it is stored (up to its lossy compression)
    rgb = np.array(Image.open(pets_root / "oxford-iiit-pet/images/Abyssinian_1.jpg").convert("RGB"))
    torch.testing.assert_close(image, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)


@pytest.mark.parametrize("border, value", [("pet", 1), ("background", 0)])
def test_pets_border_as_a_class(pets_root, border, value):
    _, mask = OxfordPetSegmentation(pets_root, size=None, border=border)[1]
    assert torch.equal(mask == value, torch.from_numpy(np.isin(_trimap(12, 16), [3, 1 if value else 2])))
    assert not (mask == IGNORE_INDEX).any()


def test_pets_resize_keeps_labels_and_split(pets_root):
    ds = OxfordPetSegmentation(pets_root, "test", size=(24, 20))
    assert len(ds) == 1
    image, mask = ds[0]
    assert image.shape == (3, 24, 20) and mask.shape == (24, 20)
    # nearest-neighbour resizing invents no label: only 0, 1, 255 appear
    assert set(mask.unique().tolist()) == {0, 1, IGNORE_INDEX}
    square = OxfordPetSegmentation(pets_root, "test", size=32)[0]
    assert square[0].shape == (3, 32, 32) and square[1].shape == (32, 32)


def test_voc_reads_palette_indices_and_keeps_255(voc_root):
    ds = PascalVOCSegmentation(voc_root, "train", size=None)
    assert len(ds) == 2 and ds.num_classes == 21 and ds.classes[15] == "person"
    image, mask = ds[0]
    assert image.shape == (3, 10, 14) and image.dtype == torch.float32
    assert mask.shape == (10, 14) and mask.dtype == torch.long
    assert set(mask.unique().tolist()) == {0, 15, IGNORE_INDEX}
    assert int(mask[5, 5]) == 15 and int(mask[2, 3]) == IGNORE_INDEX and int(mask[0, 0]) == 0
    assert set(ds[1][1].unique().tolist()) == {0, 1, IGNORE_INDEX}


def test_voc_resize_and_splits(voc_root):
    image, mask = PascalVOCSegmentation(voc_root, "val", size=(20, 28))[0]
    assert image.shape == (3, 20, 28) and mask.shape == (20, 28)
    assert set(mask.unique().tolist()) <= {0, 15, IGNORE_INDEX}
    assert len(PascalVOCSegmentation(voc_root, "trainval")) == 3


def test_same_format_as_shapes_and_a_loader_batches(pets_root, voc_root):
    shape_image, shape_mask = ShapesSegmentation(1, size=32, seed=0)[0]
    for ds in (load_segmentation("pets", pets_root, "train", size=32),
               load_segmentation("voc", voc_root, "test", size=32)):
        image, mask = ds[0]
        assert image.dtype == shape_image.dtype and image.shape == shape_image.shape
        assert mask.dtype == shape_mask.dtype and mask.shape == shape_mask.shape
        x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
        assert x.shape[1:] == (3, 32, 32) and y.shape[1:] == (32, 32)


def test_missing_files_name_root_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="oxford-iiit-pet/annotations/trimaps") as err:
        OxfordPetSegmentation(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit/VOC2012/SegmentationClass") as err:
        PascalVOCSegmentation(tmp_path)
    assert str(tmp_path) in str(err.value) and "ImageSets/Segmentation/train.txt" in str(err.value)


def test_missing_split_file_is_named(pets_root):
    (pets_root / "oxford-iiit-pet" / "annotations" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test.txt"):
        OxfordPetSegmentation(pets_root, "test")


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        OxfordPetSegmentation("x", split="train")
    with pytest.raises(ValueError, match="border"):
        OxfordPetSegmentation("x", border="maybe")
    with pytest.raises(ValueError, match="image_set"):
        PascalVOCSegmentation("x", image_set="test")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_segmentation("coco", "x")
