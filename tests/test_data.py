from pathlib import Path

import numpy as np
import pytest
import torch

from real_files import write_idx

from coursekit.data import (CLASSES, Batches, ShapesDetection, ShapesSegmentation, Split, detection_collate,
                            load_digits_split, load_mnist, load_shapes_split, make_scene)


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
    loader = s.loader("train", batch_size=16)
    assert isinstance(loader, Batches) and loader.shuffle and not s.loader("val").shuffle
    x, y = next(iter(loader))
    assert x.shape == (16, 1, 8, 8) and y.dtype == torch.int64
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        s.dataset("dev")


# --- Batches: the one batcher ----------------------------------------------------------------------------

def _labelled(n=10):
    return torch.arange(float(n)).view(n, 1), torch.arange(n) * 10


def _order(batches):
    """The rows of the first tensor, in the order one epoch of ``batches`` yields them."""
    return torch.cat([batch[0] for batch in batches])[:, 0].tolist()


def test_batches_cover_every_row_once_with_aligned_tensors():
    x, y = _labelled()
    batches = list(Batches(x, y, batch_size=4, seed=1))
    assert [len(bx) for bx, _ in batches] == [4, 4, 2] and len(Batches(x, batch_size=4)) == 3
    for bx, by in batches:
        assert torch.equal(by, bx[:, 0].long() * 10), "labels must stay with their inputs"
    assert sorted(_order(batches)) == list(range(10))


def test_batches_order_comes_from_the_seed():
    x, y = _labelled()
    order = _order(Batches(x, y, batch_size=4, seed=1))
    assert order != list(range(10)), "shuffle=True did not shuffle"
    assert _order(Batches(x, batch_size=4, seed=1)) == order  # with or without labels
    assert _order(Batches(x, batch_size=4, seed=2)) != order
    assert _order(Batches(x, batch_size=3, shuffle=False)) == list(range(10))


def test_batches_draw_a_new_order_every_epoch():
    x, _ = _labelled()
    batches = Batches(x, batch_size=4, seed=1)
    first, second = _order(batches), _order(batches)
    assert first != second and sorted(second) == list(range(10))


def test_batches_leave_the_global_random_stream_alone():
    x = torch.rand(12, 1, 4, 4)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for _ in range(2):
        list(Batches(x, x[:, 0], batch_size=5, shuffle=True, augment=True, seed=3))
    assert torch.equal(torch.rand(3), expected)


def _dihedral(t, k):
    """Flip left-right (bit 0), up-down (bit 1), then transpose (bit 2): Batches' order of moves."""
    t = t.flip(-1) if k & 1 else t
    t = t.flip(-2) if k & 2 else t
    return t.transpose(-1, -2) if k & 4 else t


def test_augment_moves_images_and_masks_together():
    split = load_shapes_split(32, 1, 1, size=32, seed=1)
    images, masks = split.x_train, split.y_train
    seen = set()
    batches = Batches(images, masks, batch_size=4, shuffle=False, augment=True, seed=3)
    for start, (x, y) in zip(range(0, 32, 4), batches):
        moves = {k for k in range(8) if torch.equal(_dihedral(images[start:start + 4], k), x)}
        assert moves and any(torch.equal(_dihedral(masks[start:start + 4], k), y) for k in moves), \
            "image and mask moved differently"
        seen |= moves
    assert seen - {0}, "augment=True changed nothing"
    assert len(seen) > 2, "augment draws only one or two of the eight moves"


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {"batch_size": 4}, "at least one tensor"),
    ((torch.zeros(5, 2),), {"batch_size": 0}, "batch_size must be positive"),
    ((torch.zeros(5, 2), torch.zeros(4)), {"batch_size": 2}, "different lengths"),
    ((torch.zeros(5, 3, 4, 4), torch.zeros(5)), {"batch_size": 2, "augment": True}, "flips height and width"),
])
def test_batches_refuse_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Batches(*args, **kwargs)


def test_split_loader_batches_with_augmentation():
    split = load_shapes_split(8, 2, 2, size=32, seed=0)
    assert isinstance(split, Split)
    loader = split.loader("train", batch_size=4, augment=True, seed=5)
    assert loader.augment and loader.shuffle and len(loader) == 2


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


@pytest.mark.parametrize("kind, folder", [("mnist", "MNIST"), ("fashion", "FashionMNIST")])
def test_mnist_loaders_read_real_idx_files(tmp_path, kind, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)
    train_y = rng.integers(0, 10, size=60, dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    test_y = rng.integers(0, 10, size=12, dtype=np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", train_x)
    write_idx(raw / "train-labels-idx1-ubyte", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
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
    with pytest.raises(FileNotFoundError, match=r"MNIST not found under root .*: none of .*MNIST/raw or .*mnist holds "
                                                r"the four IDX files train-images-idx3-ubyte.*copy them there$"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"Fashion-MNIST not found .*FashionMNIST/raw or .*fashion-mnist holds"
                                                r".*install Debian's dataset-fashion-mnist"):
        load_mnist(tmp_path, "fashion")
    with pytest.raises(ValueError, match="unknown kind 'kmnist'"):
        load_mnist(tmp_path, "kmnist")


# ------------------------------------------------------------------- IDX files as Debian and the authors ship them
DEBIAN_FASHION = Path("/usr/share/datasets")
HAS_FASHION = (DEBIAN_FASHION / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()


def _write_gz_mnist(folder: Path, n_train: int = 30, n_test: int = 10) -> dict[str, np.ndarray]:
    """The four files gzipped, Debian's layout (``folder`` is ROOT/fashion-mnist); returns the arrays."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for name, array in arrays.items():
        plain = folder / name
        write_idx(plain, array)
        (folder / f"{name}.gz").write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    return arrays


def test_gzipped_files_in_debians_layout_load(tmp_path):
    arrays = _write_gz_mnist(tmp_path / "fashion-mnist")
    split = load_mnist(tmp_path, "fashion", val_fraction=0.2)
    assert split.x_train.shape == (24, 784) and split.x_val.shape == (6, 784) and split.x_test.shape == (10, 784)
    assert torch.equal(split.y_test, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    assert split.classes[0] == "T-shirt/top" and split.name == "fashion"


def _broken(tmp_path, name: str, data: bytes) -> Path:
    _write_gz_mnist(tmp_path / "fashion-mnist")
    path = tmp_path / "fashion-mnist" / f"{name}.gz"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case, message", [
    ("truncated gzip", r"train-images-idx3-ubyte.gz: not a complete gzip file .*truncated or corrupted"),
    ("not gzip", r"train-images-idx3-ubyte.gz: not a complete gzip file"),
    ("wrong magic", r"train-images-idx3-ubyte.gz: magic number 0x00000801, expected images \(0x00000803\)"),
    ("short body", r"train-images-idx3-ubyte.gz: the header says 30 x 28 x 28 = 23,520 bytes of data, the file holds 23,519"),
    ("label count", r"train-labels-idx1-ubyte.gz: 29 labels for the 30 images of train-images-idx3-ubyte.gz"),
    ("bad label", r"train-labels-idx1-ubyte.gz: label 12 found, the classes are 0-9"),
])
def test_broken_idx_files_are_named_with_their_problem(tmp_path, case, message):
    import gzip

    from coursekit.data.real import InvalidDataFile

    rng = np.random.default_rng(2)
    good = tmp_path / "good.idx"
    write_idx(good, rng.integers(0, 256, (30, 28, 28), dtype=np.uint8))
    raw = good.read_bytes()
    data = {"truncated gzip": gzip.compress(raw)[:-40], "not gzip": b"P4 not a gzip stream at all",
            "wrong magic": gzip.compress(b"\x00\x00\x08\x01" + raw[4:]), "short body": gzip.compress(raw[:-1])}
    if case in data:
        _broken(tmp_path, "train-images-idx3-ubyte", data[case])
    else:
        labels = tmp_path / "labels.idx"
        values = rng.integers(0, 10, 29 if case == "label count" else 30, dtype=np.uint8)
        values[-1] = 12 if case == "bad label" else values[-1]
        write_idx(labels, values)
        _broken(tmp_path, "train-labels-idx1-ubyte", gzip.compress(labels.read_bytes()))
    with pytest.raises(InvalidDataFile, match=message):
        load_mnist(tmp_path, "fashion")


@pytest.mark.skipif(not HAS_FASHION, reason="Debian's dataset-fashion-mnist is not installed (scripts/setup.sh "
                    "installs it when run as root: apt-get install dataset-fashion-mnist)")
def test_the_real_fashion_mnist_files_from_debian():
    from coursekit.data.real import read_mnist_files

    (train_x, train_y), (test_x, test_y) = read_mnist_files(DEBIAN_FASHION, "fashion")
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28) and train_x.dtype == np.uint8
    assert np.bincount(train_y).tolist() == [6000] * 10 and np.bincount(test_y).tolist() == [1000] * 10
    split = load_mnist(DEBIAN_FASHION, "fashion", val_fraction=1 / 6)
    assert len(split.x_train) + len(split.x_val) == 60000 and split.x_test.shape == (10000, 784)
    assert split.x_train.dtype == torch.float32 and 0 <= float(split.x_train.min()) and float(split.x_train.max()) == 1.0
