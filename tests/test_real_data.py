"""The data switch: ``$COURSEKIT_DATA`` moves the chapters from the shipped data to real datasets on disk.

The datasets are small files in their real on-disk formats (``tests/real_files.py``): MNIST's and
Fashion-MNIST's IDX files, Oxford-IIIT Pet's JPEGs, trimaps and split lists. Every Part I chapter runs on
them at 28×28 and chapters 9–11 on the pets at 128×128, in quick mode, with no error.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from real_files import write_mnist, write_pets

from coursekit.data import IGNORE_INDEX, load_images, load_scenes, on_default_data
from coursekit.data.course import DATA_ENV, REAL_EVAL, REAL_TRAIN, ROOT_ENV, chosen
from coursekit.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
PART1 = sorted((ROOT / "book" / "part1").glob("*.ipynb"))
SEGMENTATION = [ROOT / "book" / "part2" / f"{name}.ipynb" for name in ("09_fcn", "10_segnet", "11_unet")]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    write_mnist(root, "mnist")
    write_mnist(root, "fashion")
    write_pets(root)
    return root


def test_default_is_the_shipped_data(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert chosen() == {"images": "digits", "scenes": "shapes"}
    digits = load_images(limit=100)
    assert digits.name == "digits" and digits.image_shape == (1, 8, 8) and digits.pixels == 64
    assert on_default_data(digits) and digits.x_train.shape == (100, 64)


@pytest.mark.parametrize("value, message", [
    ("kmnist", "unknown dataset 'kmnist'; Part I takes digits, mnist, fashion, Part II takes shapes, pets"),
    ("mnist,fashion", "two datasets for the same part: mnist and fashion"),
])
def test_bad_names_are_refused(monkeypatch, value, message):
    monkeypatch.setenv(DATA_ENV, value)
    with pytest.raises(UsageError, match=message):
        chosen()


def test_real_data_needs_a_root(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, "mnist")
    monkeypatch.delenv(ROOT_ENV, raising=False)
    with pytest.raises(UsageError, match="needs COURSEKIT_DATA_ROOT"):
        load_images()
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "absent"))
    with pytest.raises(UsageError, match="is not a folder"):
        load_images()
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="MNIST not found under"):
        load_images()


@pytest.mark.parametrize("kind", ["mnist", "fashion"])
def test_images_switch_to_28x28(monkeypatch, data_root, kind):
    monkeypatch.setenv(DATA_ENV, f" {kind.upper()} , pets")
    monkeypatch.setenv(ROOT_ENV, str(data_root))
    split = load_images(seed=0)
    assert split.name == kind and not on_default_data(split)
    assert split.image_shape == (1, 28, 28) and split.pixels == 784 and len(split.classes) == 10
    assert split.x_train.shape == (400, 784) and len(split.x_test) == 160  # fewer than REAL_TRAIN, REAL_EVAL
    assert 0 <= float(split.x_train.min()) and float(split.x_train.max()) <= 1
    images = load_images(seed=0, flat=False, limit=100)
    assert images.x_train.shape == (100, 1, 28, 28) and len(images.x_test) == len(images.x_val) == 50
    assert torch.equal(images.x_train.flatten(1), split.x_train[:100])
    assert REAL_TRAIN > 400 and REAL_EVAL > 160


def test_scenes_switch_to_pets(monkeypatch, data_root):
    monkeypatch.setenv(DATA_ENV, "pets")
    monkeypatch.setenv(ROOT_ENV, str(data_root))
    assert chosen() == {"images": "digits", "scenes": "pets"}
    split = load_scenes(20, 10, 8, seed=0)
    assert split.name == "pets" and split.classes == ("background", "pet") and not on_default_data(split)
    assert split.x_train.shape == (20, 3, 128, 128) and split.y_test.shape == (8, 128, 128)
    assert set(split.y_train.unique().tolist()) == {0, 1, IGNORE_INDEX}  # the trimap's border is ignored
    other = load_scenes(20, 10, 8, seed=1)
    assert not torch.equal(other.x_train, split.x_train) and torch.equal(other.x_test, split.x_test)
    with pytest.raises(UsageError, match="has 80 trainval and 32 test images"):
        load_scenes(80, 10, 8)
    monkeypatch.delenv(DATA_ENV)
    shapes = load_scenes(4, 2, 2)
    assert shapes.name == "shapes" and shapes.image_shape == (3, 64, 64) and len(shapes.classes) == 4


# Appended to each chapter: the chapter really ran on the dataset the switch names (chapter 11 also holds a
# shapes split, for its shapes-trained checkpoints).
CHECK = """
from coursekit.data import Split
_ran_on = {(v.name, v.image_shape[-2:]) for v in list(globals().values()) if isinstance(v, Split)}
assert ({name!r}, {side}) in _ran_on, _ran_on
"""


def _execute(path: Path, dataset: str, side: tuple[int, int], env: dict[str, str]) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECK.replace("{name!r}", repr(dataset)).replace("{side}", repr(side))))
    client = NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)  # the kernel's environment
    return [f"{path.name} cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error"]


def test_chapters_run_on_real_data(data_root):
    """Part I on MNIST (chapters 5–8 on Fashion-MNIST), chapters 9–11 on the pets; quick mode, two at a time."""
    for path in PART1:
        source = path.read_text()
        assert "load_images(" in source and "load_digits_split" not in source, path.name
    for path in SEGMENTATION:
        assert "load_scenes(" in path.read_text(), path.name
    env = {**os.environ, "COURSEKIT_QUICK": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", ROOT_ENV: str(data_root)}
    env.pop("MPLBACKEND", None)  # the kernels use the inline backend, as in the book
    runs = [(path, "fashion" if path.name >= "05" else "mnist", (28, 28)) for path in PART1]
    runs += [(path, "pets", (128, 128)) for path in SEGMENTATION]
    with ThreadPoolExecutor(2) as pool:
        errors = [e for found in pool.map(lambda run: _execute(*run, {**env, DATA_ENV: run[1]}), runs) for e in found]
    assert not errors, "\n".join(errors)


DEBIAN_DATASETS = Path("/usr/share/datasets")


@pytest.mark.skipif(not (DEBIAN_DATASETS / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (scripts/setup.sh installs it as root)")
def test_the_first_chapter_runs_on_the_real_fashion_mnist():
    """Chapter 1, quick, on the machine's real Fashion-MNIST (Debian's gzipped IDX files, as the author ships them)."""
    env = {**os.environ, "COURSEKIT_QUICK": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           ROOT_ENV: str(DEBIAN_DATASETS), DATA_ENV: "fashion"}
    env.pop("MPLBACKEND", None)
    errors = _execute(PART1[0], "fashion", (28, 28), env)
    assert not errors, "\n".join(errors)
