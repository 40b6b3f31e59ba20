"""Notebooks for the grading tests: a tiny exercise (no torch, runs in a second) and hostile submissions.

``toy_key()`` is a three-task exercise in the course's format (6 points). ``hostile_cases(...)`` maps a
case name to a ``Case``: a function that writes that submission into a folder and the row it must produce
(the points per task and a fragment the status must contain).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import nbformat

from coursekit.grading.isolation import sandbox
from coursekit.grading.release import release_notebook

EXERCISE = "toy"
SECRET = "SECRET-HIDDEN-MESSAGE"
SOLUTIONS = {
    "task1_mean": "return sum(xs) / len(xs)",
    "task2_square": "return x * x",
    "task3_norm": "return math.sqrt(sum(x * x for x in xs))",
}
SIGNATURES = {
    "task1_mean": 'def mean(xs):\n    """The average of the numbers in xs."""\n',
    "task2_square": "def square(x):\n",
    "task3_norm": 'def norm(xs):\n    """The Euclidean norm of xs."""\n',
}
FULL = {"task1": 2, "task2": 1, "task3": 3}


def meta(gid: str, *, grade=False, solution=False, locked=True, points=None) -> dict:
    m = {"grade": grade, "grade_id": gid, "locked": locked, "schema_version": 3, "solution": solution, "task": False}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


def markdown(source: str, gid: str):
    return nbformat.v4.new_markdown_cell(source, metadata=meta(gid))


def code(source: str, gid: str):
    return nbformat.v4.new_code_cell(source, metadata=meta(gid))


def solution(gid: str, body: str):
    source = SIGNATURES[gid] + "    ### BEGIN SOLUTION\n" + "".join(f"    {line}\n" for line in body.splitlines()) \
        + "    ### END SOLUTION"
    return nbformat.v4.new_code_cell(source, metadata=meta(gid, solution=True, locked=False))


def test(gid: str, source: str, points: float):
    return nbformat.v4.new_code_cell(source, metadata=meta(gid, grade=True, points=points))


def toy_key():
    """The instructor's notebook of the toy exercise: 3 tasks, 6 points, visible and hidden tests."""
    cells = [
        markdown("# Toy exercise\n\nThree small functions, 6 points in all.", "intro"),
        code("import math\nDATA = [3.0, 4.0]", "setup"),
        markdown("## Task 1: the mean (2 points)", "task1_text"),
        solution("task1_mean", SOLUTIONS["task1_mean"]),
        test("test_task1_mean",
             'assert mean([1, 2, 3]) == 2, "mean([1, 2, 3]) should be 2"\n'
             "### BEGIN HIDDEN TESTS\n"
             f'assert mean([0.5]) == 0.5, "{SECRET}: mean([0.5]) is 0.5"\n'
             "### END HIDDEN TESTS", 2),
        markdown("## Task 2: the square (1 point)", "task2_text"),
        solution("task2_square", SOLUTIONS["task2_square"]),
        test("test_task2_square", 'assert square(3) == 9, "square(3) should be 9"', 1),
        markdown("## Task 3: the norm (3 points)", "task3_text"),
        solution("task3_norm", SOLUTIONS["task3_norm"]),
        test("test_task3_norm",
             'import warnings\nwarnings.warn("a warning on stderr costs nothing")\n'
             'assert norm(DATA) == 5, "norm([3, 4]) should be 5"\n'
             "### BEGIN HIDDEN TESTS\n"
             "assert abs(norm([1.0, 1.0]) - math.sqrt(2)) < 1e-12\n"
             "### END HIDDEN TESTS", 3),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def write_key(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(toy_key(), folder / f"{EXERCISE}.ipynb")
    return folder


def exercise():
    """The student's copy, as ``coursekit release`` hands it out."""
    return release_notebook(toy_key(), EXERCISE)


def answered(**bodies: str):
    """The released exercise with the given solution cells (``task1_mean=...``) answered; others the key's."""
    nb = exercise()
    for cell in nb.cells:
        gid = cell.metadata["nbgrader"]["grade_id"]
        if gid in SOLUTIONS:
            body = bodies.get(gid, SOLUTIONS[gid])
            cell.source = SIGNATURES[gid] + "".join(f"    {line}\n" for line in body.splitlines())
    return nb


def cell(nb, gid: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def save(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# -- hostile and broken submissions --------------------------------------------------------------
@dataclass
class Case:
    """A submission, what it must earn per task, and a fragment its status must contain."""

    build: object          # function(folder) -> None, writes the submission
    tasks: dict            # points per task
    status: str            # "ok" for exactly ok, else a fragment of the status


def _nb_case(nb_factory, tasks, status):
    def build(folder: Path, name: str):
        save(nb_factory(), folder / f"{name}__{EXERCISE}.ipynb")
    return Case(build, tasks, status)


def _raw_case(payload: bytes, filename: str | None, status: str):
    def build(folder: Path, name: str):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / (filename or f"{name}__{EXERCISE}.ipynb")).write_bytes(payload)
    return Case(build, {"task1": 0, "task2": 0, "task3": 0}, status)


def _reordered():
    nb = answered()
    cells = nb.cells
    random.Random(0).shuffle(cells)
    nb.cells = cells
    return nb


def _deleted():
    nb = answered()
    nb.cells = [c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] not in ("task2_square", "test_task3_norm")]
    return nb


def _locked_edited():
    nb = answered(task2_square="return x")
    cell(nb, "test_task2_square").source = "pass  # my square is fine"
    cell(nb, "setup").source += "\nEXTRA = 1"
    return nb


def _no_metadata():
    nb = answered()
    for c in nb.cells:
        c.metadata = {}
    return nb


def _with_added(anchor: str, sources: list[str], **bodies):
    def make():
        nb = answered(**bodies)
        at = nb.cells.index(cell(nb, anchor)) + 1
        nb.cells[at:at] = [nbformat.v4.new_code_cell(s) for s in sources]
        return nb
    return make


def _shared_memory_hog():
    return ("import mmap\nblock = mmap.mmap(-1, 3 * 2**30)\n"
            "for start in range(0, 3 * 2**30, 2**24):\n    block[start:start + 2**24] = bytes(2**24)\n"
            "    __import__('time').sleep(0.01)\n")


def sandbox_problem() -> str | None:
    """Why no bubblewrap sandbox can be made here (and how to fix it), or None."""
    return sandbox.problem()


def hostile_cases(cell_timeout: float, memory_mb: int, timeout: float, *, sandbox: bool = False) -> dict[str, Case]:
    """Every broken or hostile submission the grader must survive, with the row it must give (in the
    sandbox, a kernel cannot see or kill the grading process: signalling it changes nothing)."""
    t = f"{cell_timeout:g}"
    full = dict(FULL)
    zero = {"task1": 0, "task2": 0, "task3": 0}
    return {
        "perfect": _nb_case(answered, full, "ok"),
        "untouched": _nb_case(exercise, zero, "not attempted: task1_mean, task2_square, task3_norm"),
        "syntax_error": _nb_case(lambda: answered(task1_mean="return sum(xs) / len(xs"),
                                 {**full, "task1": 0}, "SyntaxError in task1_mean"),
        "exception": _nb_case(_exception_nb, {**full, "task2": 0}, "an error in task2_square"),
        "wrong_answer": _nb_case(lambda: answered(task2_square="return x + x"), {**full, "task2": 0}, "ok"),
        "endless_loop": _nb_case(_endless_top, {**full, "task1": 0},
                                 f"cell time limit ({t} s) exceeded in task1_mean"),
        "endless_loop_in_test": _nb_case(lambda: answered(task2_square="while True:\n    pass"),
                                         {**full, "task2": 0}, f"cell time limit ({t} s) exceeded in test_task2_square"),
        "ignores_interrupt": _nb_case(_ignores_interrupt, {**full, "task2": 0},
                                      "ignored the interrupt in task2_square; the kernel was restarted"),
        "kernel_crash": _nb_case(lambda: _top(answered(), "task2_square", "import ctypes\nctypes.string_at(0)"),
                                 {**full, "task2": 0}, "kernel killed by SIGSEGV in task2_square; the kernel was restarted"),
        "os_exit": _nb_case(lambda: _top(answered(), "task1_mean", "import os\nos._exit(3)"),
                            {**full, "task1": 0}, "kernel exited (code 3) in task1_mean; the kernel was restarted"),
        "kernel_sigkill": _nb_case(lambda: _top(answered(), "task2_square", "import os\nos.kill(os.getpid(), 9)"),
                                   {**full, "task2": 0}, "kernel killed by SIGKILL in task2_square; the kernel was restarted"),
        "key_itself": Case(_key_itself, full, "ok"),
        "sys_exit": _nb_case(lambda: _top(answered(), "task3_norm", "import sys\nsys.exit('bye')"),
                             {**full, "task3": 0}, "an error in task3_norm"),
        "exit_in_test": _nb_case(lambda: answered(task2_square="import os\nos._exit(0)"),
                                 {**full, "task2": 0}, "kernel exited (code 0) in test_task2_square"),
        "kills_the_grader": _nb_case(lambda: _top(answered(), "task2_square", "import os, signal\n"
                                                  "os.kill(os.getppid(), signal.SIGKILL)"),
                                     *((full, "ok") if sandbox else
                                       ({**full, "task2": 0, "task3": 0}, "the grading process was killed"))),
        "huge_allocation": _nb_case(lambda: _top(answered(), "task3_norm", "buffer = bytearray(10**13)"),
                                    {**full, "task3": 0}, f"memory limit ({memory_mb} MB) exceeded in task3_norm"),
        "memory_hog_in_test": _nb_case(lambda: answered(task3_norm="blocks = []\nwhile True:\n"
                                                        "    blocks.append(bytearray(10**8))"),
                                       {**full, "task3": 0}, f"memory limit ({memory_mb} MB) exceeded in test_task3_norm"),
        "shared_memory_hog": _nb_case(lambda: _top(answered(), "task3_norm", _shared_memory_hog()),
                                      {**full, "task3": 0}, f"memory limit ({memory_mb} MB) exceeded in task3_norm"),
        "notebook_time_limit": _nb_case(_with_added("test_task2_square", [f"import time\ntime.sleep({0.8 * cell_timeout:g})"]
                                                    * (int(timeout / (0.8 * cell_timeout)) + 3)),
                                        {**full, "task3": 0}, f"notebook time limit ({timeout:g} s) reached"),
        "hidden_test_fails": _nb_case(lambda: answered(task1_mean="return sum(xs) / 3"), {**full, "task1": 0}, "ok"),
        "warnings_and_prints": _nb_case(lambda: answered(task2_square="import sys, warnings\n"
                                                         "warnings.warn('careful')\nprint('x' * 10**6)\n"
                                                         "print('oops', file=sys.stderr)\nreturn x * x"), full, "ok"),
        "cells_deleted": _nb_case(_deleted, {**full, "task2": 0}, "missing cells: task2_square"),
        "cells_reordered": _nb_case(_reordered, full, "cells reordered"),
        "locked_cells_edited": _nb_case(_locked_edited, {**full, "task2": 0},
                                        "locked cells edited: setup, test_task2_square"),
        "no_metadata": _nb_case(_no_metadata, full, "no cell of this exercise found"),
        "helper_in_added_cell": _nb_case(_with_added("task1_text", ["def total(xs):\n    return sum(xs)"],
                                                     task1_mean="return total(xs) / len(xs)"), full, "ok"),
        "invalid_json": _raw_case(b'{"cells": [ {"cell_type": "code", "source": "x = 1"', None,
                                  "invalid notebook: not valid JSON"),
        "empty_file": _raw_case(b"", None, "invalid notebook: the file is empty"),
        "binary_file": _raw_case(bytes(range(256)) * 8, None, "invalid notebook: not a text file"),
        "json_not_a_notebook": _raw_case(json.dumps({"answer": 42}).encode(), None,
                                         "invalid notebook: valid JSON, but not a Jupyter notebook"),
        "not_a_notebook_file": _raw_case(b"%PDF-1.4 my answers", "not_a_notebook_file.pdf",
                                         "invalid notebook: .pdf is not a .ipynb notebook"),
    }


def _key_itself(folder: Path, name: str):
    """The instructor's own notebook, hidden tests and all, handed in as a submission."""
    save(toy_key(), folder / f"{name}__{EXERCISE}.ipynb")


def _top(nb, gid: str, code_before: str):
    """Put ``code_before`` at the top of a solution cell (it runs when the cell runs)."""
    c = cell(nb, gid)
    c.source = code_before + "\n" + c.source
    return nb


def _exception_nb():
    return _top(answered(), "task2_square", "raise RuntimeError('student bug')")


def _endless_top():
    return _top(answered(), "task1_mean", "while True:\n    pass")


def _ignores_interrupt():
    return _top(answered(), "task2_square", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                            "while True:\n    pass")
