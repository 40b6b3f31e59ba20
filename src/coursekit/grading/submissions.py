"""Finding the submitted notebooks (the layouts are listed in ``coursekit.grading.grade``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
