"""The notebook that runs, built from the key: its locked and test cells, the student's solution cells
(matched by ``grade_id``) and the code cells the student added; and what is wrong with the submission.

The first cell is the grader's own set-up (``guard_source``): before any student cell runs it keeps the
comparison functions the tests rely on (every builtin; ``math``'s, ``numpy.testing``'s, ``numpy``'s and
``torch``'s comparisons and ``torch.testing`` when the key uses them), and puts them back before every
later cell (an IPython ``pre_run_cell`` hook, no name in the student's namespace): rebinding
``numpy.testing.assert_allclose``, replacing a Python function's ``__code__``, patching ``builtins`` or
``sys.modules['numpy']`` in a student cell no longer changes what a test checks. What it cannot stop: code
that runs *during* a test (a student function the test calls) patching the interpreter then, or a student
who removes the hook or rewrites IPython itself; the kernel is the student's, as in nbgrader.
"""

from __future__ import annotations

from dataclasses import dataclass

from coursekit.grading.judge import plan as judge_plan
from coursekit.grading.key import Exercise
from coursekit.grading.notebook import compute_checksum, grade_id, is_solution, is_test, nbgrader


@dataclass
class Planned:
    role: str      # "guard" or "serve" (the grader's set-up), "locked" (the key's code), "solution",
                   # "test", "student" (a cell the student added)
    label: str     # how the feedback names the cell
    source: str
    grade_id: str | None = None
    attempted: bool = True
    judged: bool = False  # a locked cell the judge runs too (``coursekit.grading.judge.plan``)


_GUARD = """\
def _coursekit_guard(names):
    import builtins, importlib, sys, types
    from IPython import get_ipython
    kept_builtins = {k: v for k, v in vars(builtins).items() if callable(v)}
    kept = []
    for name, attributes in names:
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        values = {a: getattr(module, a) for a in (attributes or dir(module)) if hasattr(module, a)}
        values = {a: v for a, v in values.items() if callable(v) or isinstance(v, types.ModuleType)}
        kept.append((name, module, values))
    functions = {id(f): (f, f.__code__, f.__defaults__, f.__kwdefaults__)
                 for _, _, values in kept for f in values.values() if isinstance(f, types.FunctionType)}
    def restore(*_):
        vars(builtins).update(kept_builtins)
        for name, module, values in kept:
            sys.modules[name] = module
            vars(module).update(values)
        for f, code, defaults, kwdefaults in functions.values():
            f.__code__, f.__defaults__, f.__kwdefaults__ = code, defaults, kwdefaults
    get_ipython().events.register("pre_run_cell", restore)
_coursekit_guard(%r)
del _coursekit_guard
"""
SERVE = "from coursekit.grading.serve import serve as __coursekit_serve__"  # the kernel's side of the judge
_COMPARE = ("allclose", "isclose", "equal", "array_equal", "all", "any", "abs", "isnan", "isfinite", "eq", "ne",
            "testing")


def guard_source(exercise: Exercise) -> str:
    """The grader's set-up cell for ``exercise`` (see the module docstring)."""
    text = "\n".join(c.source for c in exercise.key.cells if c.cell_type == "code")
    names: list[tuple[str, tuple[str, ...] | None]] = [("math", ("isclose", "isfinite", "isnan", "fabs"))]
    if "numpy" in text or "np." in text:
        names += [("numpy", _COMPARE), ("numpy.testing", None)]
    if "torch" in text:
        names += [("torch", _COMPARE), ("torch.testing", None)]
    return _GUARD % (names,)


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

    judged = exercise.judged
    first = Planned("serve", "the grader's set-up", SERVE) if judged else \
        Planned("guard", "the grader's set-up", guard_source(exercise))
    plan: list[Planned] = [first]
    plan += [Planned("student", "your cell at the top", s) for s in added.get(None, [])]
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
    if judged:
        runs, _ = judge_plan(_judge_cells(plan))
        for p, run in zip(plan, runs):
            p.judged = run and p.role == "locked"
    return plan, issues


def student_names(plan: list[Planned]) -> set[str]:
    """The names a judged test fetches from the kernel (``coursekit.grading.judge.plan``)."""
    return judge_plan(_judge_cells(plan))[1]


_JUDGE_ROLES = {"locked": "given", "solution": "answer", "student": "answer", "test": "test", "serve": "given",
                "guard": "given"}


def _judge_cells(plan: list[Planned]) -> list[tuple[str, str]]:
    """The plan as ``judge.plan`` reads it: (role, source), the grader's and the key's cells "given"."""
    return [(_JUDGE_ROLES[p.role], p.source) for p in plan]


def submitted_source(plan: list[Planned]) -> str:
    """The student's cells, for ``borrowed`` in the judge (cells that do not parse are left out)."""
    import ast

    kept = []
    for p in plan:
        if p.role in ("solution", "student"):
            try:
                ast.parse(p.source)
            except SyntaxError:
                continue
            kept.append(p.source)
    return "\n\n".join(kept)
