"""Turning the cells' outcomes into points, issues (the status) and feedback notes."""

from __future__ import annotations

import re

from coursekit.grading.assembly import Planned
from coursekit.grading.key import Exercise
from coursekit.grading.results import Result, TestResult
from coursekit.grading.settings import Settings

MEMORY_ERRORS = ("MemoryError", "_ArrayMemoryError", "OutOfMemoryError")
_MEMORY_TEXT = re.compile(r"can't allocate memory|Unable to allocate|out of memory", re.I)
_DISK_TEXT = re.compile(r"No space left on device|File too large|Disk quota exceeded", re.I)
# a thread or process refused by the sandbox's RLIMIT_NPROC (it binds a kernel that runs as nobody)
_PROCESS_TEXT = re.compile(r"can't start new thread|Resource temporarily unavailable", re.I)


def _is_memory(error: dict | None) -> bool:
    return bool(error) and (error["ename"] in MEMORY_ERRORS or bool(_MEMORY_TEXT.search(error.get("evalue", ""))))


def _is_disk(error: dict | None) -> bool:
    return bool(error) and bool(_DISK_TEXT.search(error.get("evalue", "") + " " + error.get("ename", "")))


def _is_processes(error: dict | None) -> bool:
    return bool(error) and error["ename"] in ("RuntimeError", "BlockingIOError", "OSError") and bool(
        _PROCESS_TEXT.search(error.get("evalue", "")))


def _error_text(error: dict) -> str:
    value = error.get("evalue", "").strip()
    text = f"{error['ename']}: {value}" if value else error["ename"]
    return text if len(text) <= 300 else text[:297] + "..."


def score(exercise: Exercise, plan: list[Planned], outcomes: dict[int, dict], stopped: str | None,
          settings: Settings, result: Result) -> Result:
    """Turn the cells' outcomes into points, issues for the status and notes for the feedback."""
    tests = {t.grade_id: t for t in exercise.tests}
    not_run = f"not run: {stopped}" if stopped else "not run"
    for index, cell in enumerate(plan):
        out = outcomes.get(index)
        status = out["status"] if out else "not run"
        error = out.get("error") if out else None
        where = cell.label
        if status == "unfinished":
            result.issues.append(f"{stopped or 'the run stopped'} in {where}")
        elif status == "died":
            result.issues.append(f"{out['reason']} in {where}; the kernel was restarted")
        elif status == "timeout":
            result.issues.append(f"cell time limit ({settings.cell_timeout:g} s) exceeded in {where}")
        elif _is_memory(error):
            result.issues.append(f"memory limit ({settings.memory_mb} MB) exceeded in {where}")
        elif _is_disk(error):
            result.issues.append(f"disk limit ({settings.disk_mb} MB) exceeded in {where}")
        elif _is_processes(error):
            result.issues.append(f"process limit ({settings.max_processes}) exceeded in {where}")
        elif error and cell.role == "solution" and cell.attempted:
            kind = error["ename"] if error["ename"] in ("SyntaxError", "IndentationError", "TabError") else "an error"
            line = f" (line {error['line']})" if error.get("line") else ""
            result.issues.append(f"{kind} in {where}{line}")
            result.notes.append(f"Your cell {where} raised {_error_text(error)}{line}.")
        elif error and cell.role in ("guard", "serve"):
            result.notes.append(f"The grader's set-up raised {_error_text(error)}.")
        elif error and cell.role in ("locked", "student"):
            result.issues.append(f"an error in {where}")
            result.notes.append(f"The cell {where} raised {_error_text(error)}.")
        if cell.role != "test":
            continue
        spec = tests[cell.grade_id]
        # Only a key's test that calls partial_credit may award part of its points: a record displayed by
        # the student's code (a function the test calls) must not turn a failed test into points.
        partial = out.get("partial") if out and "partial_credit" in cell.source else None
        points = spec.points * partial if partial is not None else 0.0
        passed = status == "ok"
        if passed:
            points, message = (spec.points * partial if partial is not None else spec.points), ""
        elif status == "not run":
            message = not_run
        elif status == "unfinished":
            message = f"stopped: {stopped}" if stopped else "stopped"
        elif status in ("died", "timeout"):
            message = out["reason"] if status == "died" else f"time limit ({settings.cell_timeout:g} s) exceeded"
        elif error and error.get("before_test"):  # the judge could not fetch the student's values
            message = _error_text(error)
        elif error and (error.get("line") in spec.hidden or (error.get("line") is None and spec.hidden)):
            # no line found in the traceback: the error may come from a hidden test, so say nothing more
            message = f"a hidden test failed ({error['ename']})"
        elif error:
            message = _error_text(error)
            line = error.get("line")
            source = cell.source.splitlines()
            if line and 0 < line <= len(source) and line not in spec.hidden:
                message += f" [line {line}: {source[line - 1].strip()}]"
        else:
            message = "failed"
        if partial is not None and not passed:
            message += f" (partial credit: {partial:.0%})"
        result.tests.append(TestResult(spec.grade_id, spec.task, round(points, 4), spec.points, passed,
                                       message, partial))
    if stopped and not any(stopped in i for i in result.issues):
        result.issues.append(stopped)
    return result
