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
in a fresh kernel in a bubblewrap sandbox (``grading.isolation.sandbox``), forked by ``grade_folder`` from
a warm zygote per worker (``grading.isolation.warm``; ``Settings(warm=False)`` starts each from nothing;
``Settings(sandbox=False)`` runs it unconfined in an empty temporary folder, as nbgrader does) with a time
limit per cell and per notebook and a memory limit. The runner enforces the cell limit (interrupt, then
kill); the grader adds walls that hold whatever happens inside the runner: at the notebook's limit, or when
the runner has logged nothing for longer than a cell can take (``stall_limit``), its process group and every
kernel it started are killed with SIGKILL. A test cell scores its points when it runs without an error, or
the fraction it reports with ``coursekit.grading.partial_credit``.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from coursekit.grading.isolation import runners, sandbox
from coursekit.grading.assembly import Planned, assemble
from coursekit.grading.key import Exercise, TestCell, load_key, resolve_exercise
from coursekit.grading.notebook import InvalidNotebook, parse_notebook, read_submission, unreadable
from coursekit.grading.results import Result, TestResult, _zero
from coursekit.grading.scoring import score
from coursekit.grading.settings import Settings
from coursekit.grading.submissions import Submission, find_submissions
from coursekit.grading.isolation.supervise import run_notebook, stop_all
from coursekit.grading.isolation.warm import ZygotePool, preload

__all__ = ["Exercise", "Planned", "Result", "SandboxUnavailable", "Settings", "Submission", "TestCell",
           "TestResult", "assemble", "find_submissions", "grade_folder", "grade_submission", "load_key",
           "resolve_exercise", "run_notebook", "score"]


class SandboxUnavailable(RuntimeError):
    """No bubblewrap sandbox can be made here; the message says what to do (install it, or --no-sandbox)."""


def require_sandbox(settings: Settings) -> None:
    """``SandboxUnavailable`` when ``settings`` asks for the sandbox and this machine cannot make one."""
    if settings.sandbox:
        why = sandbox.problem()
        if why:
            raise SandboxUnavailable(why)


def grade_submission(sub: Submission, exercises: dict[str, Exercise], settings: Settings,
                     *, exercise: str | None = None, env: dict[str, str] | None = None,
                     zygotes: ZygotePool | None = None) -> Result:
    """Grade one submission; never raises for anything the submission contains (``SandboxUnavailable``
    when the settings ask for a sandbox this machine cannot make). With ``zygotes``, its kernel is forked
    from a warm zygote of that pool, else started from nothing."""
    require_sandbox(settings)
    names = sorted(exercises)
    name = exercise or resolve_exercise(sub.hint, names)
    result = Result(sub.student, name or "", sub.file)
    if sub.problem:
        name = name or (names[0] if len(names) == 1 else None)
        result.exercise = name or ""
        return _zero(exercises.get(name), result, sub.problem)
    try:
        nb = parse_notebook(read_submission(sub.folder, sub.file))
    except (InvalidNotebook, OSError) as err:
        name = name or (names[0] if len(names) == 1 else None)
        result.exercise = name or ""
        return _zero(exercises.get(name), result, unreadable(err))
    if name is None:
        recorded = nb.metadata.get("coursekit", {})
        name = resolve_exercise(recorded.get("exercise") if isinstance(recorded, dict) else None, names)
    if name is None and len(names) == 1:
        name = names[0]
    if name is None:
        return _zero(None, result, "unknown exercise: name the file after its exercise or pass --exercise")
    result.exercise, result.max, result.judged = name, exercises[name].max, exercises[name].judged
    plan, issues = assemble(exercises[name], nb)
    result.issues += issues
    zygote = zygotes.take() if zygotes is not None else None
    try:
        outcomes, stopped = run_notebook(plan, settings, env or settings.environment(), zygote)
    finally:
        if zygote is not None:
            zygotes.give_back(zygote)
    return score(exercises[name], plan, outcomes, stopped, settings, result)


def grade_folder(submissions: str | Path, key: str | Path | dict[str, Exercise] = "solutions", *,
                 settings: Settings = Settings(),
                 exercise: str | None = None, workers: int = 1, progress: bool = True,
                 exclude: Path | None = None) -> list[Result]:
    """Grade every submission in ``submissions`` with ``workers`` in parallel; results sorted by student.

    ``key`` is the key's folder, or the exercises ``load_key`` already read from it."""
    require_sandbox(settings)
    exercises = key if isinstance(key, dict) else load_key(key)
    if exercise is not None:
        resolved = resolve_exercise(exercise, sorted(exercises))
        if resolved is None:
            raise ValueError(f"unknown exercise {exercise!r}: the key has {', '.join(sorted(exercises))}")
        exercise = resolved
    found = find_submissions(submissions, exclude=exclude)
    env = settings.environment(workers)
    zygotes = None
    graded = [exercises[exercise]] if exercise else list(exercises.values())
    modules = preload([c.source for ex in graded for c in ex.key.cells if c.cell_type == "code"])
    runners.preload(modules)  # the judge's runners are forked with these imported (grading.isolation.runners)
    if settings.sandbox and settings.warm and found:
        zygotes = ZygotePool(env, modules)
    try:
        if zygotes is not None:
            zygotes.require_memory(settings.memory_mb)  # refused up front, not a grader error on every row
        results = _grade_all(found, exercises, settings, exercise, env, workers, progress, zygotes)
    finally:
        if zygotes is not None:
            zygotes.close()
    results.sort(key=lambda r: (r.student, r.exercise, r.file))
    _mark_duplicates(results)
    return results


def _grade_all(found: list[Submission], exercises: dict[str, Exercise], settings: Settings, exercise: str | None,
               env: dict[str, str], workers: int, progress: bool, zygotes: ZygotePool | None) -> list[Result]:
    from tqdm.auto import tqdm

    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=len(found), desc="grading", unit="notebook", file=sys.stderr,
                 disable=None if progress else True) as bar:
        futures = {pool.submit(grade_submission, s, exercises, settings, exercise=exercise, env=env,
                               zygotes=zygotes): s for s in found}
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
