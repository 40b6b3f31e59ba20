"""The grader on a toy exercise (no torch: a kernel starts in about a second): the key scores full marks,
the released exercise zero, every hostile submission gets its row, a class of 20 grades with 2 workers,
limits are enforced (and leave no process behind), reports are complete, atomic and reproducible."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import grading_builders as gb
from coursekit.cli import main
from coursekit.grading.grade import Settings, find_submissions, grade_folder, grade_submission, load_key
from coursekit.grading.report import grades_csv, write_reports
from coursekit.grading.isolation.limits import Watchdog

CELL_TIMEOUT, TIMEOUT, MEMORY_MB = 2.0, 25.0, 512
# Sandboxed wherever bubblewrap works (CI installs it: scripts/setup.sh); tests/test_sandbox.py says so
# when it does not, and these tests then check the unconfined grader.
SANDBOX = gb.sandbox_problem() is None
SETTINGS = Settings(cell_timeout=CELL_TIMEOUT, timeout=TIMEOUT, memory_mb=MEMORY_MB, sandbox=SANDBOX)
CASES = gb.hostile_cases(CELL_TIMEOUT, MEMORY_MB, TIMEOUT, sandbox=SANDBOX)


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    return gb.write_key(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, key):
    """Every hostile case graded in ONE run with 2 workers; the reports written to ``out``."""
    root = tmp_path_factory.mktemp("hostile")
    for name, case in CASES.items():
        case.build(root / "subs", name)
    began = time.monotonic()
    results = grade_folder(root / "subs", key, settings=SETTINGS, workers=2, progress=False)
    seconds = time.monotonic() - began
    write_reports(root / "out", results, load_key(key), SETTINGS)
    return {r.student: r for r in results}, root / "out", seconds


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_submission_gets_its_row(hostile, name):
    results, _, _ = hostile
    case, row = CASES[name], results[name]
    assert row.exercise == gb.EXERCISE and row.max == 6
    assert row.tasks == {t: float(p) for t, p in case.tasks.items()}, (row.tasks, row.status)
    assert row.total == sum(case.tasks.values())
    if case.status == "ok":
        assert row.status == "ok", row.status
    else:
        assert case.status in row.status, row.status


def test_one_row_per_submission_and_the_whole_run_is_bounded(hostile):
    results, _, seconds = hostile
    assert sorted(results) == sorted(CASES)
    # ~30 notebooks, a few of them stuck until a limit: far less than the sum of the limits.
    assert seconds < len(CASES) * TIMEOUT / 4, seconds


def test_reports_csv_json_and_feedback(hostile):
    results, out, _ = hostile
    rows = list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert list(rows[0]) == ["student", "exercise", "task1", "task2", "task3", "total", "max", "status", "file"]
    assert [r["student"] for r in rows] == sorted(results)
    perfect = next(r for r in rows if r["student"] == "perfect")
    assert perfect == {"student": "perfect", "exercise": "toy", "task1": "2", "task2": "1", "task3": "3",
                       "total": "6", "max": "6", "status": "ok", "file": "perfect__toy.ipynb"}
    data = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    assert data["exercises"]["toy"] == {"max": 6.0, "tasks": {"task1": 2.0, "task2": 1.0, "task3": 3.0}}
    assert [(r["student"], r["total"], r["status"]) for r in data["rows"]] == \
        [(r["student"], float(r["total"]), r["status"]) for r in rows]
    feedback = sorted(p.name for p in (out / "feedback").glob("*.md"))
    assert feedback == sorted(f"{s}.md" for s in results)
    for path in (out / "feedback").glob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert gb.SECRET not in text, path.name  # hidden tests' messages stay hidden
        assert text.startswith("# Feedback for ")
    wrong = (out / "feedback" / "wrong_answer.md").read_text(encoding="utf-8")
    assert "square(3) should be 9" in wrong and "**task2**: 0 / 1 points" in wrong
    hidden = (out / "feedback" / "hidden_test_fails.md").read_text(encoding="utf-8")
    assert "a hidden test failed (AssertionError)" in hidden
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporary file behind


def test_same_grades_on_rerun_and_with_any_number_of_workers(tmp_path, key):
    subs = tmp_path / "subs"
    for name in ("perfect", "wrong_answer", "untouched", "invalid_json"):
        CASES[name].build(subs, name)
    exercises = load_key(key)
    one = grades_csv(grade_folder(subs, key, settings=SETTINGS, workers=1, progress=False), exercises)
    two = grades_csv(grade_folder(subs, key, settings=SETTINGS, workers=2, progress=False), exercises)
    assert one == two and one.count("\n") == 5


def _class_of(n: int, folder: Path) -> dict[str, float]:
    """``n`` students in the one-folder-per-student layout, with a known total each."""
    wrong = {"task1_mean": "return 0", "task2_square": "return x + x", "task3_norm": "return sum(xs)"}
    expected = {}
    for i in range(n):
        student = f"s{i:02d}"
        bodies = {gid: wrong[gid] for j, gid in enumerate(sorted(wrong)) if (i >> j) & 1}
        gb.save(gb.answered(**bodies), folder / student / f"{gb.EXERCISE}.ipynb")
        expected[student] = 6 - sum(gb.FULL[f"task{j + 1}"] for j, gid in enumerate(sorted(wrong)) if (i >> j) & 1)
    return expected


def test_a_class_of_20_grades_correctly_with_2_workers(tmp_path, key):
    expected = _class_of(20, tmp_path / "class")
    results = grade_folder(tmp_path / "class", key, settings=SETTINGS, workers=2, progress=False)
    assert {r.student: r.total for r in results} == expected
    assert all(r.status == "ok" and r.file == f"{r.student}/toy.ipynb" for r in results)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_endless_loop_is_stopped_at_the_cell_limit_and_leaves_no_process(tmp_path, key):
    """The per-cell limit holds (interrupt, then kill) and nothing the kernel started outlives grading."""
    pids = tmp_path / "pids"
    pids.mkdir()
    spin = f"import os\nopen(os.path.join({str(pids)!r}, str(os.getpid())), 'w').close()\nwhile True:\n    pass"
    escape = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              f"        open(os.path.join({str(pids)!r}, str(os.getpid())), 'w').close()\n"
              "        while True:\n            pass\n    os._exit(0)\ntime.sleep(0.5)")
    cases = {
        "spins": gb.answered(task1_mean=spin),                                   # SIGINT stops it
        "deaf": gb._top(gb.answered(), "task2_square", "import signal\n"         # ignores SIGINT: killed
                        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n" + spin),
        "daemon": gb._top(gb.answered(), "task3_norm", escape),                  # leaves the process group
    }
    exercises = load_key(key)
    # Unconfined, so the spinners can write their host pids here; tests/test_sandbox.py checks that a
    # sandbox leaves no process behind either.
    settings = Settings(cell_timeout=1.0, timeout=60, memory_mb=MEMORY_MB, sandbox=False)
    for name, nb in cases.items():
        path = gb.save(nb, tmp_path / "subs" / f"{name}__toy.ipynb")
        [sub] = [s for s in find_submissions(tmp_path / "subs") if s.path == path]
        began = time.monotonic()
        result = grade_submission(sub, exercises, settings)
        seconds = time.monotonic() - began
        assert result.total == {"spins": 4, "deaf": 5, "daemon": 6}[name], (name, result.status)
        if name != "daemon":
            assert "cell time limit (1 s) exceeded" in result.status, result.status
        # kernel start + 1 s limit + at most 1 s grace + a restart: far from the 60 s notebook limit
        assert seconds < 20, (name, seconds)
    spinners = [int(p.name) for p in pids.iterdir()]
    assert len(spinners) >= 3
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(_gone(p) for p in spinners):
        time.sleep(0.1)
    assert all(_gone(p) for p in spinners), [p for p in spinners if not _gone(p)]


def test_watchdog_kills_a_process_group_that_overruns(tmp_path):
    """The hard per-cell limit: a thread kills the kernel whatever the event loop is doing."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    dog = Watchdog()
    try:
        began = time.monotonic()
        dog.arm(proc.pid, 0.5)
        proc.wait(timeout=10)
        assert dog.fired and time.monotonic() - began < 3
    finally:
        dog.close()
        if proc.poll() is None:
            proc.kill()


def test_the_runner_starts_without_slow_imports():
    """Every notebook starts a runner: importing it must not build rfc3987_syntax's grammar (0.7 CPU-s a
    notebook, for a URI format the runner never checks) nor load torch; it still reads notebooks."""
    code = ("import sys, coursekit.grading.runner, nbformat\n"
            "nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')]))\n"
            "print(sys.modules.get('rfc3987_syntax') is None, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]


@pytest.mark.parametrize("runner, margin, timeout, status", [
    ("import time\ntime.sleep(1000)", 1.0, 60.0, "stopped making progress"),  # a runner that hangs
    ("while True:\n    pass", 1.0, 60.0, "stopped making progress"),           # one that spins
    ("while True:\n    pass", 100.0, 2.0, "notebook time limit (2 s) reached"),
])
def test_the_grader_kills_a_runner_that_stops_reporting(tmp_path, key, monkeypatch, runner, margin, timeout,
                                                         status):
    """The outer walls do not depend on the runner: a hung or spinning runner is killed from outside (a runner
    started as a new process, ``warm=False``, so that this one can take its place; a forked one is waited for
    and killed by the same code)."""
    import coursekit.grading.isolation.supervise as supervise

    monkeypatch.setattr(supervise, "RUNNER", [sys.executable, "-c", runner])
    monkeypatch.setattr(supervise, "STALL_MARGIN", margin)
    path = gb.save(gb.answered(), tmp_path / "subs" / "s__toy.ipynb")
    [sub] = find_submissions(tmp_path / "subs")
    began = time.monotonic()
    result = grade_submission(sub, load_key(key), Settings(cell_timeout=1.0, timeout=timeout, memory_mb=MEMORY_MB,
                                                           sandbox=SANDBOX, warm=False))
    assert time.monotonic() - began < 10
    assert result.total == 0 and status in result.status, result.status
    assert sub.path == path


def test_grade_cli_end_to_end(tmp_path, key, capsys):
    subs = tmp_path / "subs"
    for name in ("perfect", "wrong_answer"):
        CASES[name].build(subs, name)
    code = main(["grade", str(subs), "--out", str(tmp_path / "out"), "--key", str(key), "--workers", "2",
                 "--cell-timeout", "10", "--timeout", "60", "--memory-mb", "512", "--no-progress",
                 *([] if SANDBOX else ["--no-sandbox"])])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "perfect" in out.out and "graded 2 notebook(s)" in out.err
    rows = list(csv.DictReader((tmp_path / "out" / "grades.csv").open(encoding="utf-8")))
    assert [(r["student"], r["total"]) for r in rows] == [("perfect", "6"), ("wrong_answer", "5")]
    assert (tmp_path / "out" / "feedback" / "wrong_answer.md").is_file()


def test_grade_help_documents_it(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["grade", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in ("--out", "--key", "--workers", "--cell-timeout", "--timeout", "--memory-mb", "grades.csv",
                 "grades.json", "feedback", "<student>__<exercise>.ipynb", "status", "--no-sandbox",
                 "bubblewrap", "does NOT", "--max-processes", "--max-files", "--disk-mb"):
        assert word in text, word


@pytest.mark.parametrize("args", [
    ["grade", "no/such/folder", "--out", "x"],
    ["grade", ".", "--workers", "0"],
    ["grade", ".", "--workers", "two"],
    ["grade", ".", "--frobnicate"],
    ["grade"],
    ["grade", ".", "--key", "no/such/key"],
])
def test_grade_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coursekit") and "error" in lines[0], err
    assert not (tmp_path / "grades").exists()


def test_environment_of_the_kernel():
    env = Settings().environment(workers=2)
    assert env["COURSEKIT_QUICK"] == "1" and env["NBGRADER_EXECUTION"] == "autograde"
    assert env["MPLBACKEND"] == "Agg" and env["TQDM_DISABLE"] == "1"


def test_locked_cells_in_the_key_are_never_taken_from_the_submission(tmp_path, key):
    """A student who rewrites a test cell to pass gets the key's test anyway."""
    nb = gb.answered(task2_square="return 0")
    gb.cell(nb, "test_task2_square").source = "square = lambda x: x * x"
    path = gb.save(nb, tmp_path / "cheat__toy.ipynb")
    [sub] = find_submissions(tmp_path)
    assert sub.path == path
    result = grade_submission(sub, load_key(key), SETTINGS)
    assert result.tasks["task2"] == 0 and "locked cells edited: test_task2_square" in result.status


def test_partial_credit_comes_from_the_keys_test_only(tmp_path):
    """A key's test may award part of its points; a record the student's code displays awards nothing."""
    key = tmp_path / "key"
    nb = gb.toy_key()
    gb.cell(nb, "test_task2_square").source = (
        "from coursekit.grading import partial_credit\n"
        "checks = [square(3) == 9, square(-2) == 4]\n"
        "partial_credit(sum(checks) / len(checks))\n"
        'assert all(checks), "square is wrong for negative numbers"')
    gb.save(nb, key / f"{gb.EXERCISE}.ipynb")
    forge = ("from IPython.display import display\n"
             "display({'application/vnd.coursekit.partial-credit+json': {'fraction': 1.0}, 'text/plain': ''},"
             " raw=True)\nreturn 0")
    gb.save(gb.answered(task2_square="return 3 * x", task1_mean=forge), tmp_path / "subs" / "s__toy.ipynb")
    [sub] = find_submissions(tmp_path / "subs")
    result = grade_submission(sub, load_key(key), Settings(cell_timeout=60, timeout=120, memory_mb=4096,
                                                                   sandbox=SANDBOX))
    assert result.tasks == {"task1": 0.0, "task2": 0.5, "task3": 3.0}, (result.tasks, result.status)
    [task2] = [t for t in result.tests if t.task == "task2"]
    assert not task2.passed and task2.partial == 0.5 and "(partial credit: 50%)" in task2.message


def test_borrowed_finds_library_calls_under_any_name():
    """``borrowed`` is what hidden tests use to refuse an answer imported from coursekit or torchvision."""
    import coursekit.ops.boxes as boxes_module
    from coursekit.grading import borrowed

    namespace = {"boxes_module": boxes_module, "iou": boxes_module.box_iou, "math": __import__("math")}
    exec("def own(a):\n    return math.sqrt(helper(a))\n"
         "def helper(a):\n    return a\n"
         "def alias(a, b):\n    return iou(a, b)\n"
         "def attribute(a, b):\n    return boxes_module.box_iou(a, b)\n"
         "def local(a, b):\n    from torchvision.ops import box_iou\n    return box_iou(a, b)\n"
         "def nested(a, b):\n    return (lambda: iou(a, b))()\n", namespace)
    assert borrowed(namespace["own"]) == []
    assert borrowed(namespace["alias"]) == ["iou"] and borrowed(namespace["nested"]) == ["iou"]
    assert borrowed(namespace["attribute"]) == ["boxes_module"]
    assert borrowed(namespace["local"]) == ["torchvision.ops"]
    assert borrowed(boxes_module.box_iou) == ["coursekit.ops.boxes.box_iou"]  # imported under the task's name
    import functools
    import torch
    assert borrowed(torch.nn.functional.max_unpool2d, ("torch",)) == ["torch.nn.functional.max_unpool2d"]
    assert borrowed(torch.sigmoid) and borrowed(functools.partial(namespace["own"]))  # not Python code
