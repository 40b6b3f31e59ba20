"""nbval's notebooks, seen from the whole repository (tests/conftest.py holds the other tests' set-up).

``scripts/test.sh`` runs nbval (``--nbval-lax``) over ``book/``, ``solutions/`` and ``exercises/``. Two
things are added here, for every notebook nbval runs:

* **Exercises fail only as a blank answer should.** ``coursekit release`` tags the cells of a released
  exercise that must raise while its answers are blank (``raises-exception``: a solution stub that raises
  at the top level, and every graded test cell). nbval lets such a cell raise; here it must, and with
  ``NotImplementedError`` (a stub was called) or ``NameError`` (a name the answer defines is missing).
  A graded test cell that passes on a blank answer, or fails for another reason, fails its item.
* **Each chapter executes once.** When ``$COURSEKIT_EXECUTED`` names a folder, every chapter of ``book/``
  is written there as nbval executed it (outputs included), so that the quick book build renders those
  outputs instead of executing the chapters again (``scripts/build_book.py --executed``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BLANK_ERRORS = {"NotImplementedError", "NameError"}


def _nbval_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


def _within(path: Path, folder: str) -> Path | None:
    """``path`` relative to its nearest ancestor folder called ``folder`` (``book``, ``exercises``), or None."""
    for parent in path.parents:
        if parent.name == folder:
            return path.relative_to(parent)
    return None


def _errors(item) -> list[str]:
    return [out.get("ename") for out in getattr(item, "test_outputs", None) or [] if out.get("output_type") == "error"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not _nbval_cell(item) or not report.passed:
        return
    path = Path(str(item.fspath))
    if _within(path, "exercises") and item.options.get("check_exception"):
        errors = _errors(item)
        if not errors:
            report.outcome, report.longrepr = "failed", (
                f"{path.name}: {item.name} is tagged raises-exception but ran without an error on the blank "
                "exercise: a graded test cell that a blank answer passes gives points for nothing")
        elif errors[0] not in BLANK_ERRORS:
            report.outcome, report.longrepr = "failed", (
                f"{path.name}: {item.name} raised {errors[0]} on the blank exercise; a blank answer should "
                f"only raise {' or '.join(sorted(BLANK_ERRORS))}")


def pytest_runtest_teardown(item, nextitem):
    folder = os.environ.get("COURSEKIT_EXECUTED")
    if not folder or not _nbval_cell(item):
        return
    chapter = _within(Path(str(item.fspath)), "book")
    if chapter is None:
        return
    item.cell.outputs = getattr(item, "test_outputs", None) or []
    item.cell.execution_count = item.cell_num + 1
    if nextitem is None or nextitem.parent is not item.parent:  # the notebook's last cell: write it
        import nbformat

        target = Path(folder) / chapter
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(item.parent.nb, str(target))
