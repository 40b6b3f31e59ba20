import struct

import numpy as np
import pytest
import torch

from coursekit.data import (CLASSES, ShapesDetection, ShapesSegmentation, detection_collate, load_digits_split,
                            load_mnist, make_scene)


def test_digits_split_is_seeded_disjoint_stratified_and_in_unit_range():
    a, b = load_digits_split(seed=0), load_digits_split(seed=0)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(load_digits_split(seed=1).x_train, a.x_train)
    n = len(a.x_train) + len(a.x_val) + len(a.x_test)
    assert n == 1797 and a.x_train.shape[1] == 64
    assert 0.0 == a.x_train.min() and a.x_train.max() == 1.0
    rows = {tuple(r.tolist()) for r in torch.cat([a.x_train, a.x_val, a.x_test])}
    assert len(rows) > 1700  # (a few digits are exact duplicates in the original set)
    for split in (a.y_val, a.y_test):
        counts = torch.bincount(split, minlength=10)
        assert counts.min() >= 25 and counts.max() <= 29  # every class about 15%


def test_digits_images_and_loader():
    s = load_digits_split(flat=False, limit=100)
    assert s.x_train.shape == (100, 1, 8, 8)
    x, y = next(iter(s.loader("train", batch_size=16)))
    assert x.shape == (16, 1, 8, 8) and y.dtype == torch.int64
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        s.dataset("dev")


def test_scene_is_deterministic_and_consistent():
    s1, s2 = make_scene(5), make_scene(5)
    assert torch.equal(s1.image, s2.image) and torch.equal(s1.masks, s2.masks)
    assert not torch.equal(make_scene(6).image, s1.image)
    for seed in range(30):
        s = make_scene(seed, size=48, max_objects=5)
        k = len(s.labels)
        assert s.image.shape == (3, 48, 48) and 0 <= s.image.min() and s.image.max() <= 1
        assert s.masks.shape == (k, 48, 48) and s.boxes.shape == (k, 4) and k >= 1
        assert set(s.labels.tolist()) <= {1, 2, 3}
        # instance masks are disjoint and paint exactly the semantic mask
        assert int(s.masks.sum(0).max()) <= 1
        painted = (s.masks * s.labels[:, None, None]).sum(0)
        assert torch.equal(painted, s.semantic)
        for m, box in zip(s.masks, s.boxes):
            ys, xs = torch.nonzero(m, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_scene_rejects_bad_arguments():
    with pytest.raises(ValueError, match="size must be at least 16"):
        make_scene(0, size=8)
    with pytest.raises(ValueError, match="min_objects"):
        make_scene(0, min_objects=3, max_objects=2)


def test_segmentation_and_detection_datasets():
    seg = ShapesSegmentation(10, size=32, seed=1)
    image, mask = seg[3]
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32) and mask.max() < len(CLASSES)
    det = ShapesDetection(10, size=32, seed=1)
    images, targets = detection_collate([det[0], det[3]])
    assert len(images) == 2 and torch.equal(images[1], image)
    t = targets[1]
    assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64
    assert t["masks"].dtype == torch.uint8 and t["masks"].shape[0] == len(t["labels"])
    assert torch.equal((t["masks"] * t["labels"][:, None, None]).sum(0), mask)
    with pytest.raises(IndexError):
        seg[10]


def _write_idx(path, array):
    """IDX format: magic 0x00000803 (unsigned bytes, 3 dims), big-endian sizes, then the bytes."""
    dims = array.shape
    magic = 0x08 << 8 | len(dims)
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(">" + "I" * len(dims), *dims))
        f.write(array.astype(">u1").tobytes())


@pytest.mark.parametrize("kind, folder", [("mnist", "MNIST"), ("fashion", "FashionMNIST")])
def test_mnist_loaders_read_real_idx_files(tmp_path, kind, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)
    train_y = rng.integers(0, 10, size=60, dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    test_y = rng.integers(0, 10, size=12, dtype=np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte", train_x)
    _write_idx(raw / "train-labels-idx1-ubyte", train_y)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    _write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    split = load_mnist(tmp_path, kind, val_fraction=1 / 6)
    assert split.x_train.shape == (50, 784) and split.x_val.shape == (10, 784)
    assert torch.allclose(split.x_test, torch.from_numpy(test_x).float().flatten(1) / 255)
    assert torch.equal(split.y_test, torch.from_numpy(test_y).long())
    # every training image lands in exactly one of train/val, with its own label
    both = torch.cat([split.x_train, split.x_val])
    assert sorted(map(tuple, (both * 255).round().int().tolist())) == sorted(
        map(tuple, train_x.reshape(60, -1).astype(int).tolist()))
    assert load_mnist(tmp_path, kind, flat=False).x_test.shape == (12, 1, 28, 28)


def test_missing_mnist_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST not found under .*MNIST/raw .*train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="unknown kind 'kmnist'"):
        load_mnist(tmp_path, "kmnist")
