"""nbgrader interoperability, proven by nbgrader itself (nbgrader 0.9 is in the ``test`` extra).

One real nbgrader course in a temporary folder, run with nbgrader's own commands: ``solutions/`` is its
source, ``nbgrader generate_assignment`` releases it, ``nbgrader autograde`` grades two students, ``key``
who hands in the key's own answers and ``blank`` who hands in ``exercises/`` untouched, and
``nbgrader export`` writes the grades CSV. All 13 notebooks are one assignment, so nbgrader starts one
kernel per notebook and student; the kernel is a kernelspec written for the test that runs this very
interpreter (so it has coursekit), and the notebooks run in quick mode on the CPU.

* every cell of ``exercises/`` is exactly what nbgrader's own release makes of its solution: source,
  ``checksum``, ``cell_type`` and the ``editable``/``deletable`` flags that JupyterLab honours;
* nbgrader accepts all 13 released notebooks (nothing but the checksums of test cells with hidden tests
  differs from its database, as for any nbgrader release);
* the key scores full marks on every exercise, every test cell, and writes nothing to stderr (nbgrader
  scores a test cell that does 0); the blank exercises score zero; the exported CSV says the same.

Two small tests of nbgrader's rules that ``coursekit release`` follows need no nbgrader and always run:
the cell flags, and the refusal of a hidden block that nbgrader would leave as an empty body.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

import grading_builders as gb
from coursekit.grading.notebook import BEGIN_HIDDEN, grade_id, is_locked, is_solution, is_test, nbgrader
from coursekit.grading.release import RAISES, release_notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
ASSIGNMENT = "ex"
STUDENTS = {"key": ROOT / "solutions", "blank": ROOT / "exercises"}
TIMEOUT_CELL = 180   # seconds per cell (quick mode needs a few at most)


def _run(course: Path, env: dict, *args: str) -> str:
    """``nbgrader ARGS`` in the course folder; its log, or a failure that shows the log's end."""
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1200)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-4000:]}"
    return proc.stdout


# -- nbgrader's rules, without nbgrader ----------------------------------------------------------
def test_release_sets_nbgraders_cell_flags():
    """nbgrader's LockCells: a solution cell cannot be deleted, a test or locked cell neither deleted nor
    edited; a cell without nbgrader metadata gets no flag."""
    key = gb.toy_key()
    key.cells.append(nbformat.v4.new_markdown_cell("a plain cell"))
    flags = [{k: c.metadata[k] for k in ("editable", "deletable") if k in c.metadata}
             for c in release_notebook(key, gb.EXERCISE).cells]
    assert flags == [{"deletable": False} if is_solution(c) else
                     {"deletable": False, "editable": False} if is_locked(c) else {} for c in key.cells]
    assert flags[-1] == {} and {"deletable": False} in flags and {"deletable": False, "editable": False} in flags


def test_release_refuses_a_hidden_block_that_is_a_whole_body():
    """nbgrader removes hidden tests and puts nothing in their place: a loop whose body is all hidden
    would not compile in the student's copy, so release stops and names the cell."""
    key = gb.toy_key()
    gb.cell(key, "test_task2_square").source = ('assert square(3) == 9\nfor x in (1, 2, 3):\n'
                                                '    ### BEGIN HIDDEN TESTS\n    assert square(x) == x * x\n'
                                                '    ### END HIDDEN TESTS')
    with pytest.raises(ValueError, match="test_task2_square: without its hidden tests the cell does not compile"):
        release_notebook(key, gb.EXERCISE)


# -- a real nbgrader course -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def course(tmp_path_factory):
    pytest.importorskip("nbgrader", reason="nbgrader is in the test extra: pip install -e '.[test]'")
    from nbgrader.api import Gradebook

    base = tmp_path_factory.mktemp("nbgrader")
    course, jupyter = base / "course", base / "jupyter"
    # the kernel the notebooks name ("python3"), pinned to this interpreter; JUPYTER_PATH comes first
    spec = jupyter / "data" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (coursekit)", "language": "python"}))
    env = {**os.environ,
           # nbgrader runs `alembic` (a script of this environment) when it creates its database
           "PATH": os.pathsep.join([sysconfig.get_path("scripts"), str(Path(sys.executable).parent),
                                    os.environ.get("PATH", "")]),
           "JUPYTER_PATH": str(jupyter / "data"), "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
           "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
           "COURSEKIT_QUICK": "1", "COURSEKIT_DEVICE": "cpu", "PYTHONWARNINGS": ""}
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    for path in SOLUTIONS:
        shutil.copy(path, course / "source" / ASSIGNMENT / path.name)
    (course / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "coursekit"\n')
    logs = {"generate_assignment": _run(course, env, "generate_assignment", ASSIGNMENT)}
    for student, folder in STUDENTS.items():
        target = course / "submitted" / student / ASSIGNMENT
        target.mkdir(parents=True)
        for path in SOLUTIONS:
            shutil.copy(folder / path.name, target / path.name)
    logs["autograde"] = _run(course, env, "autograde", ASSIGNMENT,
                             f"--ExecutePreprocessor.timeout={TIMEOUT_CELL}")
    logs["export"] = _run(course, env, "export", "--to", str(course / "grades.csv"))
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="coursekit") as gb:
        for student in STUDENTS:
            for path in SOLUTIONS:
                sub = gb.find_submission_notebook(path.stem, ASSIGNMENT, student)
                scores[student, path.stem] = {g.name: (g.auto_score, g.max_score) for g in sub.grades}
    return {"root": course, "logs": logs, "scores": scores}


def _ids(paths):
    return [p.name for p in paths]


def _problems(course: Path, student: str, name: str) -> str:
    """The errors and stderr of a student's autograded notebook, cell by cell, for a failure message."""
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / f"{name}.ipynb", as_version=4)
    lines = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                lines.append(f"{grade_id(cell)}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr":
                lines.append(f"{grade_id(cell)}: stderr: {out.text[:300]}")
    return "\n".join(lines) or "(no error and no stderr)"


def _without_nbval_tag(cell):
    """The cell as nbgrader would release it: without the ``raises-exception`` tag that only nbval reads."""
    cell = nbformat.from_dict(json.loads(json.dumps(cell)))
    tags = [t for t in cell.metadata.pop("tags", []) if t != RAISES]
    if tags:
        cell.metadata["tags"] = tags
    return cell


@pytest.mark.parametrize("solution", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_release_equals_nbgraders_own(course, solution):
    ours = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    theirs = nbformat.read(course["root"] / "release" / ASSIGNMENT / solution.name, as_version=4)
    assert len(ours.cells) == len(theirs.cells)
    for mine, its in zip(ours.cells, theirs.cells):
        gid = grade_id(mine)
        mine = _without_nbval_tag(mine)
        assert mine.source == its.source, f"{gid}: released text differs from nbgrader's"
        assert mine.metadata == its.metadata, f"{gid}: cell metadata (flags, checksum) differs from nbgrader's"
        assert mine == its, gid
    def plain(metadata):  # our own notebook-level options, which nbgrader keeps and ignores
        return {k: v for k, v in metadata.items() if k != "coursekit"}

    assert plain(ours.metadata) == plain(theirs.metadata)


def test_nbgrader_accepts_the_released_metadata(course):
    """Autograding the untouched exercises changes nothing but the checksums of test cells whose hidden
    tests nbgrader puts back (it compares with the source's checksum, as with its own releases)."""
    changed = re.findall(r"Attribute '(\w+)' for cell (\S+) has changed", course["logs"]["autograde"])
    hidden = {grade_id(c) for path in SOLUTIONS for c in nbformat.read(path, as_version=4).cells
              if is_test(c) and BEGIN_HIDDEN in c.source}
    assert changed and {attr for attr, _ in changed} == {"checksum"}, changed
    assert {cell for _, cell in changed} <= hidden
    for complaint in ("does not exist in the database", "Missing grade cell", "failed to validate",
                      "Inconsistent checksums"):
        assert complaint not in course["logs"]["autograde"]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_key_scores_full_marks_under_nbgrader(course, solution):
    scores = course["scores"]["key", solution.stem]
    tests = {grade_id(c): float(nbgrader(c)["points"]) for c in nbformat.read(solution, as_version=4).cells
             if is_test(c)}
    assert {name: max_ for name, (_, max_) in scores.items()} == tests
    lost = {name: score for name, (score, max_) in scores.items() if score != max_}
    assert not lost, f"{lost}\n{_problems(course['root'], 'key', solution.stem)}"
    assert _problems(course["root"], "key", solution.stem) == "(no error and no stderr)"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_blank_exercise_scores_zero_under_nbgrader(course, solution):
    scores = course["scores"]["blank", solution.stem]
    assert scores and sum(max_ for _, max_ in scores.values()) > 0
    assert {name: score for name, (score, _) in scores.items() if score} == {}


def test_exported_grades(course):
    total = sum(float(nbgrader(c)["points"]) for path in SOLUTIONS
                for c in nbformat.read(path, as_version=4).cells if is_test(c))
    with open(course["root"] / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(STUDENTS)
    assert float(rows["key"]["max_score"]) == float(rows["blank"]["max_score"]) == total
    assert float(rows["key"]["score"]) == total and float(rows["blank"]["score"]) == 0.0
