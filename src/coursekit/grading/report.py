"""What ``coursekit grade`` writes: ``grades.csv``, ``grades.json`` and ``feedback/<student>.md``.

``grades.csv`` has one row per student and exercise (one row per student when one exercise is graded)::

    student,exercise,task1,task2,task3,total,max,status,file

``taskN`` is the points earned on task N (the sum of its test cells; empty when the row's exercise has
no such task), ``status`` is ``ok`` or the ``;``-separated problems an instructor should know about
(``not attempted: task2_kl``, ``locked cells edited: ...``, ``cell time limit (60 s) exceeded in
test_task2_kl``, ``kernel exited (code 1) in task1_encoder; restarted``, ``invalid notebook: not valid
JSON (...)``, ...), ``file`` the notebook graded. ``grades.json`` holds the same rows plus each test's
result and message, the exercises' points per task and the limits used. Every file is written atomically
and the order is fixed (by student, exercise, file), so grading the same folder again gives the same files.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from coursekit.grading.isolation import cgroups, sandbox
from coursekit.grading.key import Exercise
from coursekit.grading.results import Result
from coursekit.grading.settings import Settings
from coursekit.grading.notebook import write_atomic

FORMAT = "coursekit-grades/1"


def number(x: float) -> str:
    """Points as a person writes them: ``3``, ``2.5``, ``0.33``."""
    return f"{round(float(x), 2):g}"


def task_columns(results: list[Result], exercises: dict[str, Exercise]) -> list[str]:
    """The task columns, ``task1``, ``task2``, ... first in numeric order, then any other task names."""
    names = []
    for name in sorted({r.exercise for r in results if r.exercise in exercises}):
        names += [t for t in exercises[name].tasks if t not in names]
    numbered = sorted((t for t in names if re.fullmatch(r"task\d+", t)), key=lambda t: int(t[4:]))
    return numbered + [t for t in names if t not in numbered]


def grades_csv(results: list[Result], exercises: dict[str, Exercise]) -> str:
    tasks = task_columns(results, exercises)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "exercise", *tasks, "total", "max", "status", "file"])
    for r in results:
        own = exercises[r.exercise].tasks if r.exercise in exercises else {}
        earned = r.tasks
        writer.writerow([r.student, r.exercise, *(number(earned.get(t, 0)) if t in own else "" for t in tasks),
                         number(r.total), number(r.max), r.status, r.file])
    return buffer.getvalue()


def grades_json(results: list[Result], exercises: dict[str, Exercise], settings: Settings) -> str:
    graded = sorted({r.exercise for r in results if r.exercise in exercises})
    data = {
        "format": FORMAT,
        "sandbox": settings.sandbox,
        "sandbox_user": sandbox.runs_as() if settings.sandbox else None,  # "grader" or "nobody"
        # what enforces memory and process limits: "cgroup v1", "cgroup v2" or "poll (why no cgroup)"
        "limits_enforced_by": cgroups.describe() if settings.sandbox else "poll (no sandbox)",
        "settings": {"cell_timeout_s": settings.cell_timeout, "timeout_s": settings.timeout,
                     "memory_mb": settings.memory_mb, "sandbox": settings.sandbox, "disk_mb": settings.disk_mb,
                     "max_processes": settings.max_processes, "max_files": settings.max_files},
        "columns": ["student", "exercise", *task_columns(results, exercises), "total", "max", "status", "file"],
        "exercises": {n: {"max": exercises[n].max, "tasks": exercises[n].tasks} for n in graded},
        "rows": [r.to_dict() for r in results],
    }
    return json.dumps(data, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def feedback_name(student: str) -> str:
    """A file name for a student id: letters, digits, ``.``, ``-``, ``_`` and ``@`` kept, the rest ``_``."""
    name = re.sub(r"[^\w.@-]", "_", student).strip(".") or "_"
    return name + ".md"


WITHHELD = "(a line that quoted a hidden test was left out)"


def withhold_secrets(text: str, secrets: set[str]) -> str:
    """``text`` with every line that contains a line of a hidden test replaced by ``WITHHELD``."""
    return "\n".join(WITHHELD if any(s in line for s in secrets) else line for line in text.split("\n"))


def feedback(student: str, results: list[Result], exercises: dict[str, Exercise]) -> str:
    """One student's feedback: for every exercise, each task's points and each failing test's message;
    no line of it quotes a hidden test (``Exercise.secret_lines``)."""
    lines = [f"# Feedback for {student}", ""]
    for r in results:
        lines += [f"## {r.exercise or 'unknown exercise'}: {number(r.total)} / {number(r.max)} points", "",
                  f"Notebook: `{r.file}`  ", f"Status: {r.status}", ""]
        by_task: dict[str, list] = {}
        for t in r.tests:
            by_task.setdefault(t.task, []).append(t)
        for task, tests in by_task.items():
            earned, most = sum(t.points for t in tests), sum(t.max for t in tests)
            lines.append(f"- **{task}**: {number(earned)} / {number(most)} points")
            for t in tests:
                verdict = "passed" if t.passed and t.partial is None else (
                    f"passed, partial credit {t.partial:.0%}" if t.passed else f"failed: {t.message}")
                lines.append(f"  - {t.grade_id}: {verdict}")
        if r.notes:
            lines += ["", *[f"- {n}" for n in r.notes]]
        lines.append("")
    secrets = set().union(*(exercises[r.exercise].secret_lines for r in results if r.exercise in exercises))
    return withhold_secrets("\n".join(lines), secrets)


def write_reports(out: str | Path, results: list[Result], exercises: dict[str, Exercise],
                  settings: Settings) -> list[Path]:
    """Write the CSV, the JSON and the feedback files into ``out``; return their paths.

    Feedback files of students no longer in ``results`` (from an earlier run) are removed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "grades.csv", out / "grades.json"]
    write_atomic(written[0], grades_csv(results, exercises))
    write_atomic(written[1], grades_json(results, exercises, settings))
    by_student: dict[str, list[Result]] = {}
    for r in results:
        by_student.setdefault(r.student, []).append(r)
    names: dict[str, str] = {}
    for student in sorted(by_student):
        name = feedback_name(student)
        while name in names.values():  # two ids that clean up to the same file name
            name = name[:-3] + "_.md"
        names[student] = name
        path = out / "feedback" / name
        write_atomic(path, feedback(student, by_student[student], exercises))
        written.append(path)
    for stale in sorted((out / "feedback").glob("*.md")):
        if stale not in written:
            stale.unlink()
    return written
