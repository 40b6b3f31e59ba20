"""The book itself: a quick-mode build must succeed with no cell error and no Sphinx warning."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [c["file"] for c in part["chapters"]]
    return files


def test_toc_lists_every_chapter_and_only_existing_files():
    files = _toc_files()
    for name in files:
        assert any((ROOT / "book" / f"{name}{ext}").is_file() for ext in (".md", ".ipynb")), name
    notebooks = {str(p.relative_to(ROOT / "book").with_suffix("")) for p in (ROOT / "book").rglob("*.ipynb")
                 if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts}
    assert notebooks <= set(files), f"notebooks missing from _toc.yml: {sorted(notebooks - set(files))}"


def test_notebooks_are_committed_without_outputs():
    import nbformat

    for path in sorted((ROOT / "book").rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.relative_to(ROOT)} has outputs in cells {dirty}"


@pytest.mark.slow
def test_quick_book_build(tmp_path):
    jb = shutil.which("jupyter-book", path=os.path.dirname(sys.executable)) or shutil.which("jupyter-book")
    assert jb, "jupyter-book is not installed"
    env = dict(os.environ, COURSEKIT_QUICK="1", TQDM_DISABLE="1")
    env.pop("MPLBACKEND", None)  # the kernels must use the inline backend, or plt.show() draws no PNG
    out = subprocess.run([jb, "build", str(ROOT / "book"), "--toc", str(ROOT / "_toc.yml"),
                          "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
                         capture_output=True, text=True, env=env, timeout=1500)
    log = out.stdout + out.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line and "IPKernelApp" not in line]
    assert out.returncode == 0, "book build failed:\n" + "\n".join(warnings[:40]) + "\n" + log[-3000:]
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").is_file()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not served locally"
    for name in _toc_files():
        page = (html / f"{name}.html").read_text()
        # MyST-NB shows a cell error as an "output traceback" block (pygments' CSS names "Traceback" too)
        assert 'class="output traceback' not in page and "Traceback (most recent call last)" not in page, \
            f"{name}: an error traceback is shown on the page"
        if (ROOT / "book" / f"{name}.ipynb").is_file():
            assert re.search(r'<img[^>]+src="[^"]*\.png"', page), f"{name}: no figure on the page"
