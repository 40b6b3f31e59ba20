"""``coursekit release``: write the student notebooks (exercises/) from the instructor's (solutions/).

For each ``solutions/NAME.ipynb`` the released ``exercises/NAME.ipynb`` has

* the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` replaced by a stub, at the same
  indentation: ``# YOUR CODE HERE`` and ``raise NotImplementedError()``;
* the lines from ``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` removed, and nothing put in
  their place;
* no outputs and no execution counts;
* nbgrader's ``checksum`` and ``cell_type`` added to every graded, solution and locked cell, and the
  cell flags that JupyterLab and Notebook honour: ``deletable: false`` on solution cells,
  ``deletable: false`` and ``editable: false`` on test and other locked cells;
* ``metadata["coursekit"]["exercise"] = NAME``, so a renamed submission is still recognised;
* nbval's ``raises-exception`` tag on every graded test cell and on each answer cell whose stub raises as it
  runs, so nbval executes the blank exercise to its end (the tests check that those cells raise only
  ``NotImplementedError`` or ``NameError``, as a blank answer does).

Each cell is what nbgrader 0.9's ``generate_assignment`` makes of it (its ``LockCells``,
``ClearSolutions``, ``ClearOutput``, ``ClearHiddenTests`` and ``ComputeChecksums`` with their default
settings), text, flags and checksum alike, so the exercises can be handed out and autograded by an
nbgrader course too; ``tests/test_nbgrader.py`` runs nbgrader itself to compare. (So a hidden block
must not be the whole body of an indented statement: nbgrader would leave it empty, and release refuses
such a cell.)

Release is deterministic: the same solutions give byte-identical exercises, which is what the drift test
(``tests/test_release.py``) and ``coursekit release --check`` compare.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from coursekit.grading.notebook import (BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION,
                                        compute_checksum, grade_id, is_grade, is_locked, is_solution, is_test,
                                        nbgrader, notebook_text, read_key, validate_notebook, write_atomic)

CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
# nbval's tag for a cell that may raise: on a released (blank) exercise, every graded test cell and every answer
# cell whose stub raises as soon as it runs (the repository's conftest.py checks that they raise as a blank should).
RAISES = "raises-exception"
MARKDOWN_STUB = "YOUR ANSWER HERE"


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _replace_blocks(source: str, begin: str, end: str, stub: tuple[str, ...]) -> str:
    """Each ``begin ... end`` block (markers included) replaced by ``stub`` at the marker's indentation.

    Lines are split on ``"\n"`` only and joined back the same way, as nbgrader does, so every other
    character of the cell (a trailing newline, blank lines) stays as it was.
    """
    lines, block = [], None
    for line in source.split("\n"):
        if block is None and line.strip() == begin:
            block = _indent(line)
        elif block is not None and line.strip() == end:
            lines += [block + s for s in stub]
            block = None
        elif block is None:
            lines.append(line)
    if block is not None:
        raise ValueError(f"'{begin}' is never closed by '{end}'")
    return "\n".join(lines)


def clear_solutions(source: str) -> str:
    """Replace each ``BEGIN SOLUTION ... END SOLUTION`` block by the stub, at the marker's indentation."""
    return _replace_blocks(source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)


def strip_hidden_tests(source: str) -> str:
    """Remove each ``BEGIN HIDDEN TESTS ... END HIDDEN TESTS`` block, markers included, as nbgrader does."""
    return _replace_blocks(source, BEGIN_HIDDEN, END_HIDDEN, ())


def lock_flags(cell) -> dict[str, bool]:
    """The Jupyter cell flags nbgrader's ``LockCells`` sets: solution cells cannot be deleted, test cells
    and other locked cells can be neither deleted nor edited; other cells get none."""
    if is_solution(cell):
        return {"deletable": False}
    if is_grade(cell) or is_locked(cell):
        return {"deletable": False, "editable": False}
    return {}


def release_cell(cell):
    """The student's copy of one cell (a new cell; the argument is not changed)."""
    cell = copy.deepcopy(cell)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    if is_solution(cell):
        if cell.cell_type != "code":
            cell.source = MARKDOWN_STUB
        elif BEGIN_SOLUTION in cell.source:
            cell.source = clear_solutions(cell.source)
        else:  # nbgrader's rule: a solution cell without markers is replaced whole
            cell.source = "\n".join(CODE_STUB)
    elif is_test(cell):
        cell.source = strip_hidden_tests(cell.source)
    cell.metadata.pop("execution", None)
    cell.metadata.update(lock_flags(cell))
    if is_test(cell) or (is_solution(cell) and cell.cell_type == "code" and CODE_STUB[1] in cell.source.splitlines()):
        cell.metadata["tags"] = [*(t for t in cell.metadata.get("tags", []) if t != RAISES), RAISES]
    meta = nbgrader(cell)
    if is_grade(cell) or is_solution(cell) or is_locked(cell):
        meta["cell_type"] = cell.cell_type
        meta["checksum"] = compute_checksum(cell)
    return cell


def _compiles(source: str) -> bool:
    try:
        compile(source, "<cell>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def release_notebook(nb, name: str):
    """The student notebook for exercise ``name``; raises ``ValueError`` if the source is not valid."""
    problems = validate_notebook(nb)
    if problems:
        raise ValueError(f"{name}: " + "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""))
    out = copy.deepcopy(nb)
    out.cells = [release_cell(c) for c in nb.cells]
    for key, cell in zip(nb.cells, out.cells):
        if is_test(key) and _compiles(key.source) and not _compiles(cell.source):
            raise ValueError(f"{name}: cell {grade_id(key)}: without its hidden tests the cell does not compile "
                             "(a hidden block is the whole body of a statement?): add a visible line to it")
    for index, cell in enumerate(out.cells):
        if "id" not in cell and out.get("nbformat_minor", 0) >= 5:
            cell["id"] = re.sub(r"[^a-zA-Z0-9_-]", "-", nbgrader(cell).get("grade_id") or f"cell-{index}")
    out.metadata.setdefault("coursekit", {})["exercise"] = name
    return out


def release_text(solution: str | Path) -> str:
    """The exact text ``coursekit release`` writes for this solution notebook."""
    solution = Path(solution)
    return notebook_text(release_notebook(read_key(solution), solution.stem))


@dataclass
class ReleaseReport:
    """What a release wrote (or, with ``check``, would write): paths relative to nothing, just names."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        return self.written + self.removed


def solution_paths(source: str | Path) -> list[Path]:
    """The exercise sources in a folder, sorted; ``FileNotFoundError`` if it is missing or empty."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"solutions folder not found: {source}")
    paths = sorted(p for p in source.glob("*.ipynb") if not p.name.startswith("."))
    if not paths:
        raise FileNotFoundError(f"no notebooks in {source}")
    return paths


def _released_exercise(path: Path) -> str | None:
    """The exercise name a released notebook records in its metadata, or None."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        return meta.get("coursekit", {}).get("exercise")
    except (ValueError, AttributeError):
        return None


def release(source: str | Path = "solutions", out: str | Path = "exercises", *,
            check: bool = False) -> ReleaseReport:
    """Regenerate ``out`` from ``source``; with ``check``, write nothing and report what differs.

    An ``out/*.ipynb`` that an earlier release wrote (it names its exercise in its metadata) but whose
    solution is gone is removed; other files in ``out`` are left alone.
    """
    out, report = Path(out), ReleaseReport()
    wanted = {}
    for path in solution_paths(source):
        wanted[path.name] = release_text(path)
    for name, text in wanted.items():
        target = out / name
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            report.unchanged.append(name)
            continue
        report.written.append(name)
        if not check:
            write_atomic(target, text)
    for stale in sorted(out.glob("*.ipynb")) if out.is_dir() else []:
        if stale.name not in wanted and _released_exercise(stale):
            report.removed.append(stale.name)
            if not check:
                stale.unlink()
    return report
