"""What the repository's conftest.py adds to nbval: blank exercises fail only as blanks should, and chapters
are kept as nbval executed them (so the quick book build renders them without executing them again)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, cells: list[tuple[str, list[str]]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": tags}) for source, tags in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def _nbval(tmp_path: Path, target: Path, **env: str) -> subprocess.CompletedProcess:
    """pytest with nbval and the repository's conftest.py as a plugin, on ``target`` outside the repository."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", "-q", "-rf", str(target)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_a_blank_exercise_may_fail_only_with_not_implemented_or_a_missing_name(tmp_path):
    raises = ["raises-exception"]
    path = _notebook(tmp_path / "exercises" / "ex.ipynb", [
        ("def answer(x):\n    raise NotImplementedError()", []),
        ("answer(1)", raises),                       # a stub called: as a blank should
        ("assert result == 3", raises),              # a name the answer defines is missing: as a blank should
        ("int('x')", raises),                        # another error: the exercise itself is broken
        ("assert 1 + 1 == 2", raises),               # a graded test a blank answer passes: points for nothing
    ])
    out = _nbval(tmp_path, path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "2 failed, 3 passed" in out.stdout, out.stdout
    assert "Cell 3 raised ValueError on the blank exercise" in out.stdout
    assert "Cell 4 is tagged raises-exception but ran without an error" in out.stdout


def test_chapters_are_written_as_executed_when_asked(tmp_path):
    path = _notebook(tmp_path / "book" / "part9" / "ch.ipynb", [("x = 6 * 7\nprint(x)", []), ("x + 1", [])])
    kept = tmp_path / "executed"
    out = _nbval(tmp_path, path, COURSEKIT_EXECUTED=str(kept))
    assert out.returncode == 0, out.stdout + out.stderr
    executed = nbformat.read(str(kept / "part9" / "ch.ipynb"), as_version=4)
    assert [c.execution_count for c in executed.cells] == [1, 2]
    assert executed.cells[0].outputs[0]["text"] == "42\n"
    assert executed.cells[1].outputs[0]["data"]["text/plain"] == "43"
    assert nbformat.read(str(path), as_version=4).cells[0].outputs == []  # the source notebook is left as it was
