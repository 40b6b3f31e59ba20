"""Finding the submitted notebooks (the layouts are listed in ``coursekit.grading.grade``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from coursekit.grading.notebook import LINK


@dataclass
class Submission:
    student: str
    path: Path
    file: str                   # path relative to the submissions folder, for the reports
    hint: str | None = None     # the exercise its name suggests
    problem: str | None = None  # set when there is nothing to grade
    folder: Path = Path(".")    # the submissions folder: ``file`` is read below it (``notebook.read_submission``)


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def _notebooks(entry: Path) -> tuple[list[Path], list[Path]]:
    """The notebooks below student folder ``entry`` and the symbolic links there that would lead to one (a
    link named ``*.ipynb``, or a link to a folder), in order; links are never followed, only listed."""
    notebooks, links = [], []
    pending = [entry]
    while pending:  # no recursion: a folder thousands deep is walked as any other
        folder = pending.pop()
        try:
            listing = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for item in listing:
            if _skipped(item.name):
                continue
            path = Path(item.path)
            if item.is_symlink():
                if item.name.endswith(".ipynb") or path.is_dir():
                    links.append(path)
            elif item.is_dir(follow_symlinks=False):
                pending.append(path)
            elif item.name.endswith(".ipynb") and item.is_file(follow_symlinks=False):
                notebooks.append(path)
    return sorted(notebooks), sorted(links)


def find_submissions(folder: str | Path, *, exclude: Path | None = None) -> list[Submission]:
    """Every submission in ``folder``, in a fixed order (see the module docstring for the layouts). A
    symbolic link (a file, a student's folder or anything in it) is a submission with the problem
    ``notebook.LINK``: it is never followed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"submissions folder not found: {folder}")
    found = []
    for entry in sorted(folder.iterdir()):
        if _skipped(entry.name):
            continue
        if exclude is not None and entry.resolve() == exclude.resolve():
            continue
        if entry.is_symlink():
            student, _, hint = entry.stem.partition("__") if entry.suffix == ".ipynb" else (entry.name, "", "")
            found.append(Submission(student or entry.stem, entry, entry.name, hint=hint or None, problem=LINK,
                                    folder=folder))
        elif entry.is_dir():
            notebooks, links = _notebooks(entry)
            if not notebooks and not links:
                found.append(Submission(entry.name, entry, entry.name + "/", problem="no .ipynb notebook in the folder",
                                        folder=folder))
            for nb in notebooks:
                found.append(Submission(entry.name, nb, nb.relative_to(folder).as_posix(), hint=nb.stem, folder=folder))
            for link in links:
                found.append(Submission(entry.name, link, link.relative_to(folder).as_posix(), hint=link.stem,
                                        problem=LINK, folder=folder))
        elif entry.suffix == ".ipynb":
            student, _, hint = entry.stem.partition("__")
            found.append(Submission(student or entry.stem, entry, entry.name, hint=hint or None, folder=folder))
        else:
            found.append(Submission(entry.stem, entry, entry.name,
                                    problem=f"invalid notebook: {entry.suffix or 'a file without extension'} "
                                            f"is not a .ipynb notebook", folder=folder))
    return found
