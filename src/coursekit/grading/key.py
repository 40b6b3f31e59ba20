"""The instructor's key: every notebook of ``solutions/`` (or ``--key``), checked, with its tests and points."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from coursekit.grading.notebook import BEGIN_HIDDEN, END_HIDDEN, grade_id, hidden_lines, is_test, nbgrader, read_key, task_of, validate_notebook
from coursekit.grading.release import release_cell, solution_paths


@dataclass
class TestCell:
    grade_id: str
    task: str
    points: float
    hidden: set[int]


@dataclass
class Exercise:
    """One notebook of the key: the solution, its released cells by id, its tests and points."""

    name: str
    key: object
    released: dict[str, object]   # the student's copy of each cell, by grade id
    tests: list[TestCell]

    @property
    def judged(self) -> bool:
        """Whether the judge runs this exercise's tests (the default; a key notebook's metadata
        ``{"coursekit": {"judge": false}}`` runs them in the student's kernel, as nbgrader does)."""
        meta = self.key.metadata.get("coursekit", {})
        return not (isinstance(meta, dict) and meta.get("judge") is False)

    def original(self, gid: str):
        return next(c for c in self.key.cells if grade_id(c) == gid)

    @property
    def tasks(self) -> dict[str, float]:
        tasks: dict[str, float] = {}
        for t in self.tests:
            tasks[t.task] = tasks.get(t.task, 0.0) + t.points
        return tasks

    @property
    def max(self) -> float:
        return sum(t.points for t in self.tests)

    @cached_property
    def secret_lines(self) -> set[str]:
        """The hidden tests' lines (stripped, markers and lines under 8 characters left out) that the
        student's copy does not contain: text that feedback must never show."""
        given = {line.strip() for cell in self.released.values() for line in cell.source.splitlines()}
        secret = set()
        for cell in self.key.cells:
            if is_test(cell):
                lines = cell.source.splitlines()
                secret |= {lines[n - 1].strip() for n in hidden_lines(cell.source) if n <= len(lines)}
        return {line for line in secret - given
                if len(line) >= 8 and line not in (BEGIN_HIDDEN, END_HIDDEN)}


def load_key(folder: str | Path) -> dict[str, Exercise]:
    """Read and check every notebook of the key folder; ``ValueError``/``FileNotFoundError`` if unusable."""
    exercises = {}
    for path in solution_paths(folder):
        key = read_key(path)
        problems = validate_notebook(key)
        if problems:
            raise ValueError(f"key {path}: " + "; ".join(problems[:3]))
        released = {grade_id(c): release_cell(c) for c in key.cells if grade_id(c)}
        tests = [TestCell(grade_id(c), task_of(grade_id(c)), float(nbgrader(c)["points"]), hidden_lines(c.source))
                 for c in key.cells if is_test(c)]
        exercises[path.stem] = Exercise(path.stem, key, released, tests)
    return exercises


def resolve_exercise(hint: str | None, names: list[str]) -> str | None:
    """The exercise a name refers to: exact, a copy (``NAME (1)``, ``NAME-Copy1``), or its number (``05``, ``ex5``)."""
    if not hint:
        return None
    if hint in names:
        return hint
    starts = [n for n in names if hint.startswith(n)]
    if len(starts) == 1:
        return starts[0]
    number = re.match(r"^(?:ex(?:ercise)?[ _-]?)?(\d+)(?:\D|$)", hint, re.I)
    if number:
        same = [n for n in names if re.match(r"\d+", n) and int(re.match(r"\d+", n).group()) == int(number.group(1))]
        if len(same) == 1:
            return same[0]
    return None
