"""``coursekit release`` and the course's real exercises.

* release on the toy exercise: stubs, hidden tests gone, outputs cleared, deterministic, ``--check``;
* drift: every ``exercises/NAME.ipynb`` is exactly what a fresh release of ``solutions/NAME.ipynb`` gives;
* every cell of every notebook in ``solutions/`` and ``exercises/`` carries valid nbgrader (schema 3)
  metadata with unique grade ids;
* grading: each ``solutions/*.ipynb`` scores full marks and each ``exercises/*.ipynb`` zero (all graded
  in one run with 2 workers).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

import grading_builders as gb
from coursekit.cli import main
from coursekit.grading.isolation import sandbox
from coursekit.grading.grade import Settings, grade_folder
from coursekit.grading.notebook import (BEGIN_HIDDEN, BEGIN_SOLUTION, compute_checksum, grade_id, is_solution,
                                        is_test, nbgrader, task_of, validate_cell, validate_notebook)
from coursekit.grading.release import release, release_notebook, release_text

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


# -- release on the toy exercise ------------------------------------------------------------------
def test_release_strips_solutions_and_hidden_tests():
    key = gb.toy_key()
    key.cells[1].outputs = [nbformat.v4.new_output("stream", text="old output")]
    key.cells[1].execution_count = 7
    out = release_notebook(key, gb.EXERCISE)
    text = nbformat.writes(out)
    for body in gb.SOLUTIONS.values():
        assert body not in text
    assert gb.SECRET not in text and BEGIN_HIDDEN not in text and BEGIN_SOLUTION not in text
    assert text.count("raise NotImplementedError()") == 3
    assert "old output" not in text and all(c.get("execution_count") is None for c in out.cells if c.cell_type == "code")
    assert out.metadata["coursekit"]["exercise"] == gb.EXERCISE
    for cell in out.cells:
        meta = nbgrader(cell)
        assert meta["checksum"] == compute_checksum(cell) and meta["cell_type"] == cell.cell_type
    stub = gb.cell(out, "task1_mean").source
    assert stub.splitlines()[-2:] == ["    # YOUR CODE HERE", "    raise NotImplementedError()"]
    compile(gb.cell(out, "test_task1_mean").source, "test", "exec")
    assert key.cells[3].source.count(BEGIN_SOLUTION) == 1  # the source is not changed
    # nbval may let exactly these cells raise: every graded test, and answers whose stub raises as it runs
    for cell in out.cells:
        raises = is_test(cell) or (is_solution(cell) and "raise NotImplementedError()" in cell.source.splitlines())
        assert ("raises-exception" in cell.metadata.get("tags", [])) == raises, cell.source


def test_release_is_deterministic_and_check_detects_drift(tmp_path, capsys):
    sol, ex = gb.write_key(tmp_path / "solutions"), tmp_path / "exercises"
    assert main(["release", "--solutions", str(sol), "--out", str(ex)]) == 0
    first = (ex / "toy.ipynb").read_bytes()
    assert main(["release", "--solutions", str(sol), "--out", str(ex)]) == 0
    assert (ex / "toy.ipynb").read_bytes() == first == release_text(sol / "toy.ipynb").encode()
    assert main(["release", "--solutions", str(sol), "--out", str(ex), "--check"]) == 0
    (ex / "toy.ipynb").write_text(first.decode().replace("YOUR CODE HERE", "my answer"), encoding="utf-8")
    capsys.readouterr()
    assert main(["release", "--solutions", str(sol), "--out", str(ex), "--check"]) == 1
    assert "toy.ipynb differs" in capsys.readouterr().out
    assert main(["release", "--solutions", str(sol), "--out", str(ex)]) == 0
    assert (ex / "toy.ipynb").read_bytes() == first
    # an exercise whose solution is gone is stale; a file release did not write is left alone
    (ex / "old.ipynb").write_bytes(first)
    (ex / "notes.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert main(["release", "--solutions", str(sol), "--out", str(ex), "--check"]) == 1
    assert release(sol, ex).removed == ["old.ipynb"]
    assert sorted(p.name for p in ex.iterdir()) == ["notes.ipynb", "toy.ipynb"]


def test_released_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result is as readable as open() makes it."""
    import os
    import stat

    sol, ex = gb.write_key(tmp_path / "sol"), tmp_path / "ex"
    umask = os.umask(0)
    os.umask(umask)
    release(sol, ex)
    assert stat.S_IMODE((ex / "toy.ipynb").stat().st_mode) == 0o666 & ~umask


def test_release_refuses_an_invalid_solution(tmp_path, capsys):
    sol = gb.write_key(tmp_path / "solutions")
    nb = gb.toy_key()
    gb.cell(nb, "test_task2_square").metadata["nbgrader"]["grade_id"] = "task1_mean"  # duplicate id
    nbformat.write(nb, sol / "broken.ipynb")
    assert main(["release", "--solutions", str(sol), "--out", str(tmp_path / "ex")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken" in err[0] and "grade_id 'task1_mean' is also used" in err[0]
    assert not (tmp_path / "ex").exists()  # nothing written when any solution is invalid


def test_release_missing_folder_is_exit_2(tmp_path, capsys):
    assert main(["release", "--solutions", str(tmp_path / "none"), "--out", str(tmp_path / "ex")]) == 2
    assert capsys.readouterr().err.startswith("coursekit: error: solutions folder not found")


def test_validation_catches_bad_metadata():
    nb = gb.toy_key()
    nb.cells[0].metadata["nbgrader"]["schema_version"] = 2
    gb.cell(nb, "test_task1_mean").metadata["nbgrader"].pop("points")
    gb.cell(nb, "setup").metadata["nbgrader"]["grade_id"] = "bad id!"
    problems = " | ".join(validate_notebook(nb))
    assert "schema_version is 2" in problems and "'points' must be a number" in problems
    assert "characters outside" in problems
    assert validate_notebook(gb.toy_key(), strict=True) == []


# -- the course's real exercises ------------------------------------------------------------------
def _ids(paths):
    return [p.name for p in paths]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_exercise_matches_a_fresh_release(solution):
    exercise = ROOT / "exercises" / solution.name
    assert exercise.is_file(), f"exercises/{solution.name} is missing: run `coursekit release`"
    assert exercise.read_text(encoding="utf-8") == release_text(solution), \
        f"exercises/{solution.name} has drifted from solutions/{solution.name}: run `coursekit release`"


def test_no_exercise_without_its_solution():
    """Covers the drift test's other direction (and holds trivially while there are no exercises yet)."""
    orphans = [p.name for p in EXERCISES if not (ROOT / "solutions" / p.name).is_file()]
    assert orphans == [], f"exercises without a solution: {orphans}"


@pytest.mark.parametrize("path", SOLUTIONS + EXERCISES, ids=[f"{p.parent.name}/{p.name}" for p in SOLUTIONS + EXERCISES])
def test_every_cell_has_valid_nbgrader_metadata(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    seen = set()
    for index, cell in enumerate(nb.cells):
        assert "nbgrader" in cell.metadata, f"cell {index} has no nbgrader metadata"
        assert validate_cell(cell) == [], (index, validate_cell(cell))
        gid = grade_id(cell)
        assert gid not in seen, f"grade_id {gid!r} is not unique"
        seen.add(gid)
    assert validate_notebook(nb) == []
    tasks = {task_of(grade_id(c)) for c in nb.cells if nbgrader(c).get("grade")}
    assert 2 <= len(tasks) <= 5, tasks
    if path.parent.name == "exercises":
        text = nbformat.writes(nb)
        assert BEGIN_SOLUTION not in text and BEGIN_HIDDEN not in text
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.fixture(scope="module")
def real_grades(tmp_path_factory):
    """solutions/ and exercises/ handed in by two 'students', graded in one run with 2 workers."""
    subs = tmp_path_factory.mktemp("real")
    for who, paths in (("solution", SOLUTIONS), ("exercise", EXERCISES)):
        for path in paths:
            (subs / who).mkdir(parents=True, exist_ok=True)
            (subs / who / path.name).write_bytes(path.read_bytes())
    results = grade_folder(subs, ROOT / "solutions", settings=Settings(sandbox=sandbox.problem() is None), workers=2, progress=False)
    return {(r.student, r.file.split("/")[-1]): r for r in results}


@pytest.mark.parametrize("solution", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solution_scores_full_marks(real_grades, solution):
    result = real_grades[("solution", solution.name)]
    assert result.max > 0 and result.total == result.max, (result.status, [t.message for t in result.tests])
    assert result.status == "ok", result.status


@pytest.mark.parametrize("exercise", EXERCISES, ids=_ids(EXERCISES))
def test_released_exercise_scores_zero(real_grades, exercise):
    result = real_grades[("exercise", exercise.name)]
    assert result.max > 0 and result.total == 0, (result.tasks, result.status)
    assert result.status.startswith("not attempted: "), result.status
