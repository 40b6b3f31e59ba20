"""``coursekit grade``: score a folder of submitted notebooks against the instructor's key.

Which notebooks are read (``find_submissions``):

* ``SUBMISSIONS/<student>/<name>.ipynb`` -- one folder per student, any number of exercises, also in
  subfolders; the folder's name is the student id.
* ``SUBMISSIONS/<student>__<exercise>.ipynb`` -- one file per student and exercise; the id is the part
  before the first ``__``.
* ``SUBMISSIONS/<student>.ipynb`` -- one file per student; the id is the file name.

Which exercise a notebook answers: ``--exercise`` if given; else its name (``05_sparse_autoencoder``,
``05_sparse_autoencoder (1)``, ``05``, ``ex5``); else the exercise recorded in its metadata by
``coursekit release``; else the key's only exercise.

How a submission is graded (``grade_submission``): the notebook that runs is built from the *key*: its
locked cells and its test cells (visible and hidden) come from ``solutions/``, and only the solution
cells, matched by ``grade_id``, and code cells the student added come from the submission. So deleting,
reordering or editing cells cannot change the tests; edited or deleted locked cells are reported. It runs
in a fresh kernel in an empty temporary folder (``coursekit.grading.runner``) with a time limit per cell
and per notebook and a memory limit. The runner enforces the cell limit (interrupt, then kill); the grader
adds walls that hold whatever happens inside the runner: at the notebook's limit, or when the runner has
logged nothing for longer than a cell can take (``stall_limit``), its process group and every kernel it
started are killed with SIGKILL. A test cell scores its points when it runs without an error, or the
fraction it reports with ``coursekit.grading.partial_credit``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coursekit.grading.notebook import (InvalidNotebook, compute_checksum, grade_id, hidden_lines,
                                        is_solution, is_test, nbgrader, notebook_text, parse_notebook,
                                        read_key, task_of, validate_notebook, write_atomic)
from coursekit.grading.release import release_cell, solution_paths

# Run as a file, not ``-m coursekit...``: importing the package would load torch into every runner.
RUNNER = [sys.executable, "-c", "import runpy, sys; sys.argv.pop(0); runpy.run_path(sys.argv[0], run_name='__main__')",
          str(Path(__file__).with_name("runner.py"))]
MEMORY_ERRORS = ("MemoryError", "_ArrayMemoryError", "OutOfMemoryError")
_MEMORY_TEXT = re.compile(r"can't allocate memory|Unable to allocate|out of memory", re.I)


@dataclass(frozen=True)
class Settings:
    """Limits for each submission and the environment its kernel sees."""

    cell_timeout: float = 60.0
    timeout: float = 600.0
    memory_mb: int = 4096
    max_restarts: int = 3

    def environment(self, workers: int = 1) -> dict[str, str]:
        import coursekit

        env = dict(os.environ, COURSEKIT_QUICK="1", NBGRADER_EXECUTION="autograde", MPLBACKEND="Agg",
                   TQDM_DISABLE="1", PYTHONHASHSEED="0", PYDEVD_DISABLE_FILE_VALIDATION="1")
        env.setdefault("COURSEKIT_DEVICE", "cpu")
        threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, threads)
        package_root = str(Path(coursekit.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        return env


# -- the key -------------------------------------------------------------------------------------
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


# -- the submissions -----------------------------------------------------------------------------
@dataclass
class Submission:
    student: str
    path: Path
    file: str                   # path relative to the submissions folder, for the reports
    hint: str | None = None     # the exercise its name suggests
    problem: str | None = None  # set when there is nothing to grade


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts)


def find_submissions(folder: str | Path, *, exclude: Path | None = None) -> list[Submission]:
    """Every submission in ``folder``, in a fixed order (see the module docstring for the layouts)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"submissions folder not found: {folder}")
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if exclude is not None and entry.resolve() == exclude.resolve():
            continue
        if entry.is_dir():
            notebooks = sorted(p for p in entry.rglob("*.ipynb") if p.is_file() and not _hidden(p, entry))
            if not notebooks:
                found.append(Submission(entry.name, entry, entry.name + "/", problem="no .ipynb notebook in the folder"))
            for nb in notebooks:
                found.append(Submission(entry.name, nb, nb.relative_to(folder).as_posix(), hint=nb.stem))
        elif entry.suffix == ".ipynb":
            student, _, hint = entry.stem.partition("__")
            found.append(Submission(student or entry.stem, entry, entry.name, hint=hint or None))
        else:
            found.append(Submission(entry.stem, entry, entry.name,
                                    problem=f"invalid notebook: {entry.suffix or 'a file without extension'} "
                                            f"is not a .ipynb notebook"))
    return found


# -- results -------------------------------------------------------------------------------------
@dataclass
class TestResult:
    grade_id: str
    task: str
    points: float
    max: float
    passed: bool
    message: str = ""           # for the student: what failed (hidden tests: only that one failed)
    partial: float | None = None


@dataclass
class Result:
    student: str
    exercise: str
    file: str
    tests: list[TestResult] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # per-cell detail for the feedback file
    max: float = 0.0

    @property
    def total(self) -> float:
        return round(sum(t.points for t in self.tests), 4)

    @property
    def tasks(self) -> dict[str, float]:
        tasks: dict[str, float] = {}
        for t in self.tests:
            tasks[t.task] = round(tasks.get(t.task, 0.0) + t.points, 4)
        return tasks

    @property
    def status(self) -> str:
        return "; ".join(self.issues) if self.issues else "ok"

    def to_dict(self) -> dict:
        return {"student": self.student, "exercise": self.exercise, "file": self.file, "tasks": self.tasks,
                "total": self.total, "max": self.max, "status": self.status,
                "tests": [asdict(t) for t in self.tests], "issues": self.issues, "notes": self.notes}


def _zero(exercise: Exercise | None, result: Result, why: str) -> Result:
    result.issues.append(why)
    if exercise is not None:
        result.max = exercise.max
        result.tests = [TestResult(t.grade_id, t.task, 0.0, t.points, False, why) for t in exercise.tests]
    return result


# -- building the notebook that runs ------------------------------------------------------------
@dataclass
class Planned:
    role: str      # "locked" (the key's code), "solution", "test", "student" (a cell the student added)
    label: str     # how the feedback names the cell
    source: str
    grade_id: str | None = None
    attempted: bool = True


def _normal(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _unchanged(cell, exercise: Exercise, gid: str, *, or_key: bool = True) -> bool:
    """Is a student's copy of a cell as handed out? Its checksum verifies, or its text is the released one
    (or, with ``or_key``, the key's: a locked cell copied from solutions/ is not an edit)."""
    meta = nbgrader(cell)
    if meta.get("checksum") and meta.get("checksum") == compute_checksum(cell):
        return True
    released, original = exercise.released[gid], exercise.original(gid)
    texts = (_normal(released.source), _normal(original.source)) if or_key else (_normal(released.source),)
    return cell.cell_type == released.cell_type and _normal(cell.source) in texts


def assemble(exercise: Exercise, nb) -> tuple[list[Planned], list[str]]:
    """The cells to run, built from the key (see the module docstring), and what is wrong with ``nb``."""
    key_ids = [grade_id(c) for c in exercise.key.cells if grade_id(c)]
    known = set(key_ids)
    issues: list[str] = []
    theirs: dict[str, object] = {}
    duplicates, order = [], []
    added: dict[str | None, list[str]] = {}
    anchor = None
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid in known:
            if gid in theirs:
                duplicates.append(gid)
                continue
            theirs[gid] = cell
            order.append(gid)
            anchor = gid
        elif cell.cell_type == "code" and cell.source.strip() and (not nbgrader(cell) or is_solution(cell)):
            added.setdefault(anchor, []).append(cell.source)
    if not theirs:
        issues.append("no cell of this exercise found (wrong notebook, or cells copied without their metadata?)")
    solutions = [grade_id(c) for c in exercise.key.cells if is_solution(c)]
    missing = [g for g in solutions if g not in theirs]
    if missing and theirs:
        issues.append("missing cells: " + ", ".join(missing))
    if duplicates:
        issues.append("duplicate cells (the first was graded): " + ", ".join(sorted(set(duplicates))))
    if order != [g for g in key_ids if g in theirs]:
        issues.append("cells reordered")
    locked = [g for g in key_ids if not is_solution(exercise.released[g])]
    edited = [g for g in locked if g in theirs and not _unchanged(theirs[g], exercise, g)]
    deleted = [g for g in locked if g not in theirs and exercise.released[g].cell_type == "code"]
    if edited:
        issues.append("locked cells edited: " + ", ".join(edited))
    if deleted and theirs:
        issues.append("locked cells deleted: " + ", ".join(deleted))
    untouched = [g for g in solutions if g in theirs and _unchanged(theirs[g], exercise, g, or_key=False)]
    if untouched:
        issues.append("not attempted: " + ", ".join(untouched))

    plan: list[Planned] = [Planned("student", "your cell at the top", s) for s in added.get(None, [])]
    for cell in exercise.key.cells:
        gid = grade_id(cell)
        if cell.cell_type == "code":
            if is_solution(cell):
                if gid in theirs:
                    plan.append(Planned("solution", gid, theirs[gid].source, gid, gid not in untouched))
            elif is_test(cell):
                plan.append(Planned("test", gid, cell.source, gid))
            else:
                plan.append(Planned("locked", gid or "a setup cell", cell.source, gid))
        plan += [Planned("student", f"your cell after {gid}", s) for s in added.get(gid, []) if gid]
    return plan, issues


# -- running -------------------------------------------------------------------------------------
_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _read_events(path: Path) -> list[dict]:
    events = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                pass  # a line cut short by a kill
    return events


STALL_MARGIN = 80.0  # the runner's hard-kill margin (5 s), a kernel start (at most 60 s) and some slack


def stall_limit(settings: Settings) -> float:
    """Seconds the runner may write no event: a cell's limit, the interrupt's grace and ``STALL_MARGIN``."""
    return settings.cell_timeout + min(10.0, max(1.0, settings.cell_timeout)) + STALL_MARGIN


def _supervise(proc: subprocess.Popen, events: Path, settings: Settings) -> str | None:
    """Wait for the runner (sleeping, never spinning); why it had to be stopped, or None if it finished.

    Two walls that do not depend on anything inside the runner: the notebook's time limit, and a runner
    that has logged nothing for ``stall_limit`` seconds (its own per-cell limits have failed).
    """
    began = time.monotonic()
    stall = stall_limit(settings)
    while True:
        try:
            proc.wait(timeout=0.25)
            return None
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now - began > settings.timeout:
            return f"notebook time limit ({settings.timeout:g} s) reached"
        try:
            quiet = time.time() - events.stat().st_mtime
        except OSError:
            quiet = now - began
        if min(quiet, now - began) > stall:
            return f"the grading process stopped making progress for {stall:g} s and was killed"


def run_notebook(plan: list[Planned], settings: Settings, env: dict[str, str]) -> tuple[dict[int, dict], str | None]:
    """Run the planned cells in a subprocess; return each cell's outcome by index, and why the run stopped early."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(p.source) for p in plan])
    with tempfile.TemporaryDirectory(prefix="coursekit-grade-", ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        (tmp / "work").mkdir()
        write_atomic(tmp / "graded.ipynb", notebook_text(nb))
        events_path = tmp / "events.jsonl"
        command = [*RUNNER, str(tmp / "graded.ipynb"), str(events_path),
                   "--workdir", str(tmp / "work"), "--cell-timeout", str(settings.cell_timeout),
                   "--memory-mb", str(settings.memory_mb), "--max-restarts", str(settings.max_restarts)]
        stopped = None
        with open(tmp / "runner.log", "wb") as log:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, cwd=tmp, start_new_session=True)
            with _live_lock:
                _live.add(proc)
            try:
                stopped = _supervise(proc, events_path, settings)
            finally:
                _kill_group(proc.pid)
                proc.wait()
                with _live_lock:
                    _live.discard(proc)
                for event in _read_events(events_path):
                    if event.get("event") == "kernel" and event.get("pid"):
                        _kill_group(event["pid"])  # the kernel and anything it started
        events = _read_events(events_path)
        if stopped is None:
            ends = [e for e in events if e.get("event") in ("done", "abort", "crash")]
            if not ends:
                stopped = f"the grading process was killed (exit code {proc.returncode})"
            elif ends[-1]["event"] == "abort":
                stopped = ends[-1]["reason"]
            elif ends[-1]["event"] == "crash":
                stopped = "grader error: " + ends[-1].get("error", "?")
        outcomes: dict[int, dict] = {}
        for event in events:
            if event.get("event") == "start":
                outcomes[event["cell"]] = {"status": "unfinished"}
            elif event.get("event") == "end":
                outcomes[event["cell"]] = event
        return outcomes, stopped


def stop_all() -> None:
    """Kill every grading subprocess still running (after Ctrl-C)."""
    with _live_lock:
        for proc in list(_live):
            _kill_group(proc.pid)


# -- scoring -------------------------------------------------------------------------------------
def _is_memory(error: dict | None) -> bool:
    return bool(error) and (error["ename"] in MEMORY_ERRORS or bool(_MEMORY_TEXT.search(error.get("evalue", ""))))


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
        elif error and cell.role == "solution" and cell.attempted:
            kind = error["ename"] if error["ename"] in ("SyntaxError", "IndentationError", "TabError") else "an error"
            line = f" (line {error['line']})" if error.get("line") else ""
            result.issues.append(f"{kind} in {where}{line}")
            result.notes.append(f"Your cell {where} raised {_error_text(error)}{line}.")
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


def grade_submission(sub: Submission, exercises: dict[str, Exercise], settings: Settings,
                     *, exercise: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Grade one submission; never raises for anything the submission contains."""
    names = sorted(exercises)
    name = exercise or resolve_exercise(sub.hint, names)
    result = Result(sub.student, name or "", sub.file)
    if sub.problem:
        name = name or (names[0] if len(names) == 1 else None)
        result.exercise = name or ""
        return _zero(exercises.get(name), result, sub.problem)
    try:
        nb = parse_notebook(sub.path.read_bytes())
    except (InvalidNotebook, OSError) as err:
        name = name or (names[0] if len(names) == 1 else None)
        result.exercise = name or ""
        why = f"invalid notebook: {err}" if isinstance(err, InvalidNotebook) else f"unreadable file: {err.strerror or err}"
        return _zero(exercises.get(name), result, why)
    if name is None:
        recorded = nb.metadata.get("coursekit", {})
        name = resolve_exercise(recorded.get("exercise") if isinstance(recorded, dict) else None, names)
    if name is None and len(names) == 1:
        name = names[0]
    if name is None:
        return _zero(None, result, "unknown exercise: name the file after its exercise or pass --exercise")
    result.exercise, result.max = name, exercises[name].max
    plan, issues = assemble(exercises[name], nb)
    result.issues += issues
    outcomes, stopped = run_notebook(plan, settings, env or settings.environment())
    return score(exercises[name], plan, outcomes, stopped, settings, result)


def grade_folder(submissions: str | Path, key: str | Path | dict[str, Exercise] = "solutions", *,
                 settings: Settings = Settings(),
                 exercise: str | None = None, workers: int = 1, progress: bool = True,
                 exclude: Path | None = None) -> list[Result]:
    """Grade every submission in ``submissions`` with ``workers`` in parallel; results sorted by student.

    ``key`` is the key's folder, or the exercises ``load_key`` already read from it."""
    exercises = key if isinstance(key, dict) else load_key(key)
    if exercise is not None:
        resolved = resolve_exercise(exercise, sorted(exercises))
        if resolved is None:
            raise ValueError(f"unknown exercise {exercise!r}: the key has {', '.join(sorted(exercises))}")
        exercise = resolved
    found = find_submissions(submissions, exclude=exclude)
    env = settings.environment(workers)
    results: list[Result] = []
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=len(found), desc="grading", unit="notebook", file=sys.stderr,
                 disable=None if progress else True) as bar:
        futures = {pool.submit(grade_submission, s, exercises, settings, exercise=exercise, env=env): s for s in found}
        try:
            for future in as_completed(futures):
                sub = futures[future]
                try:
                    results.append(future.result())
                except Exception as err:  # noqa: BLE001 - a grader bug must not cost the other students
                    name = exercise or resolve_exercise(sub.hint, sorted(exercises)) or ""
                    results.append(_zero(exercises.get(name), Result(sub.student, name, sub.file),
                                         f"grader error: {type(err).__name__}: {err}"))
                bar.update()
        except BaseException:
            for future in futures:
                future.cancel()
            stop_all()
            raise
    results.sort(key=lambda r: (r.student, r.exercise, r.file))
    _mark_duplicates(results)
    return results


def _mark_duplicates(results: list[Result]) -> None:
    seen: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        if r.exercise:
            seen.setdefault((r.student, r.exercise), []).append(r)
    for group in seen.values():
        if len(group) > 1:
            for r in group:
                others = ", ".join(o.file for o in group if o is not r)
                r.issues.insert(0, f"duplicate submission (also {others})")
