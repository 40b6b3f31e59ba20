"""Exercise notebooks: nbgrader's cell metadata (schema version 3), its markers, and safe reading/writing.

Every cell of an exercise carries ``metadata["nbgrader"]``, as nbgrader writes it, so the same notebooks
can be imported into an nbgrader course:

* ``grade``, ``solution``, ``locked`` (booleans, required), ``schema_version`` (3), ``grade_id``
  (``^[a-zA-Z0-9_\\-]*$``, unique in the notebook, required when any of the three is true), ``points``
  (>= 0, required when ``grade``), ``task`` (optional, markdown only); nbgrader adds ``checksum`` and
  ``cell_type`` to released cells so that edits can be detected.
* A *solution* cell (``solution: true``) holds the answer between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``; a *test* cell (``grade: true``) holds visible asserts and, between
  ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``, the hidden ones. Every other cell is locked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

# nbformat imports jsonschema, which imports rfc3987_syntax when it is installed, only to check the "iri"
# format: it builds a grammar on import, 0.7 CPU-seconds of every command and every graded notebook. No
# notebook field is an IRI; without the module jsonschema leaves that format unchecked.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]

import nbformat  # noqa: E402

SCHEMA_VERSION = 3
GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]*$")
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MAX_NOTEBOOK_BYTES = 64 * 2**20
_TASK = re.compile(r"^(?:test_)?(task\d+)(?:_|$)")
_BOOLS = ("grade", "solution", "locked")


MAX_NESTING = 64  # a notebook's JSON is 6 levels deep; outputs and metadata may add some
LINK = "symbolic link: not graded"


class InvalidNotebook(ValueError):
    """A file that cannot be read as a Jupyter notebook; the message says why, for the instructor."""


class LinkRefused(OSError):
    """A submission that is, or lies below, a symbolic link: never followed, never read."""


def read_submission(folder: str | os.PathLike, relative: str, *, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of file ``relative`` (``/``-separated) below ``folder``, opened one level at a time with
    ``O_NOFOLLOW``: ``LinkRefused`` if any part of it is a symbolic link, ``InvalidNotebook`` if it is not
    a regular file or is larger than ``limit`` (told by ``fstat``, before anything is read)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the instructor's folder: may be a link
    parts = relative.strip("/").split("/")
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if last else os.O_DIRECTORY)
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as err:
                try:
                    link = stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode)
                except OSError:
                    link = False
                if link:
                    raise LinkRefused(LINK) from None
                raise err from None
            os.close(fd)
            fd = child
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidNotebook("not a regular file")
        if st.st_size > limit:
            raise InvalidNotebook(f"file is larger than {limit // 2**20} MB")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 2**20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def unreadable(err: Exception) -> str:
    """The row's reason for a submission ``read_submission`` or ``parse_notebook`` refused."""
    if isinstance(err, LinkRefused):
        return LINK
    if isinstance(err, InvalidNotebook):
        return f"invalid notebook: {err}"
    return f"unreadable file: {getattr(err, 'strerror', None) or err}"


def _depth_past(value, cap: int) -> bool:
    """Whether parsed JSON ``value`` nests more than ``cap`` lists and dicts deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > cap:
                    return True
                stack.append((child, depth + 1))
    return False


def nbgrader(cell) -> dict:
    """The cell's nbgrader metadata, or ``{}`` when it has none (or something that is not a dict)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def is_grade(cell) -> bool:
    return bool(nbgrader(cell).get("grade", False))


def is_solution(cell) -> bool:
    return bool(nbgrader(cell).get("solution", False))


def is_locked(cell) -> bool:
    """nbgrader's rule: solution cells are never locked, test cells always are, others as marked."""
    if is_solution(cell):
        return False
    return is_grade(cell) or bool(nbgrader(cell).get("locked", False))


def is_test(cell) -> bool:
    """An autograder test cell: graded, code, not an answer."""
    return is_grade(cell) and not is_solution(cell) and cell.get("cell_type") == "code"


def grade_id(cell) -> str | None:
    gid = nbgrader(cell).get("grade_id")
    return gid if isinstance(gid, str) else None


def task_of(gid: str) -> str:
    """The task a cell belongs to: ``task2`` for ``task2_kl`` and ``test_task2_kl``, else the id itself."""
    match = _TASK.match(gid)
    return match.group(1) if match else gid.removeprefix("test_")


def compute_checksum(cell) -> str:
    """nbgrader's checksum of a cell (source, type, flags, id, points): it changes when a student edits it."""
    meta = nbgrader(cell)
    m = hashlib.md5()
    for part in (cell.get("source", ""), cell.get("cell_type", ""), str(is_grade(cell)),
                 str(is_solution(cell)), str(is_locked(cell)), meta.get("grade_id", "")):
        m.update(str(part).encode("utf-8"))
    if is_grade(cell):
        m.update(str(float(meta.get("points", 0))).encode("utf-8"))
    return m.hexdigest()


def marker_blocks(source: str, begin: str, end: str) -> list[tuple[int, int]]:
    """0-based ``(begin_line, end_line)`` of each ``begin ... end`` block; ``ValueError`` if unbalanced."""
    blocks, start = [], None
    for i, line in enumerate(source.splitlines()):
        text = line.strip()
        if text == begin:
            if start is not None:
                raise ValueError(f"'{begin}' on line {i + 1} inside another block")
            start = i
        elif text == end:
            if start is None:
                raise ValueError(f"'{end}' on line {i + 1} without '{begin}'")
            blocks.append((start, i))
            start = None
    if start is not None:
        raise ValueError(f"'{begin}' on line {start + 1} is never closed by '{end}'")
    return blocks


def hidden_lines(source: str) -> set[int]:
    """1-based numbers of the lines of hidden tests, markers included (as a traceback counts them)."""
    return {n + 1 for a, b in marker_blocks(source, BEGIN_HIDDEN, END_HIDDEN) for n in range(a, b + 1)}


def validate_cell(cell) -> list[str]:
    """Problems with one cell's nbgrader metadata against nbgrader's schema version 3 (``[]`` if none)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["metadata 'nbgrader' is not a dictionary"]
    problems = []
    if meta.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version is {meta.get('schema_version')!r}, not {SCHEMA_VERSION}")
    for key in _BOOLS:
        if not isinstance(meta.get(key), bool):
            problems.append(f"'{key}' must be true or false, not {meta.get(key)!r}")
    if "task" in meta and not isinstance(meta["task"], bool):
        problems.append(f"'task' must be true or false, not {meta['task']!r}")
    task = meta.get("task") is True
    if task and cell.get("cell_type") != "markdown":
        problems.append("a task cell must be a markdown cell")
    if task and (meta.get("grade") or meta.get("solution")):
        problems.append("a task cell cannot also be a grade or solution cell")
    if any(meta.get(k) is True for k in (*_BOOLS, "task")):
        gid = meta.get("grade_id")
        if not isinstance(gid, str) or not gid:
            problems.append("'grade_id' is required for grade, solution, locked and task cells")
        elif not GRADE_ID.match(gid):
            problems.append(f"grade_id {gid!r} has characters outside [a-zA-Z0-9_-]")
    if meta.get("grade") is True or task:
        points = meta.get("points")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
            problems.append(f"'points' must be a number >= 0, not {points!r}")
    if "cell_type" in meta and meta["cell_type"] != cell.get("cell_type"):
        problems.append(f"cell type was {meta['cell_type']!r} and is now {cell.get('cell_type')!r}")
    if "checksum" in meta and not isinstance(meta["checksum"], str):
        problems.append("'checksum' must be a string")
    return problems


def validate_notebook(nb, *, strict: bool = False) -> list[str]:
    """Problems that stop a notebook from being released and graded (``[]`` when there are none).

    Always checked: nbgrader's schema in every cell, unique grade ids, test cells that are code, and
    solution and hidden-test markers that are balanced and sit in the right cells. With ``strict`` also
    the course's format: every cell has nbgrader metadata, solution cells use the markers, ids follow
    ``taskN_name`` / ``test_taskN_name``, 2 to 5 tasks each with a solution and a test, and a first
    markdown cell with an H1 title that states the points total.
    """
    problems, seen = [], {}
    solution_tasks, test_tasks, total = [], [], 0.0
    for index, cell in enumerate(nb.cells):
        where = f"cell {index}" + (f" ({grade_id(cell)})" if grade_id(cell) else "")
        problems += [f"{where}: {p}" for p in validate_cell(cell)]
        meta, source = nbgrader(cell), cell.get("source", "")
        gid = grade_id(cell)
        if gid:
            if gid in seen:
                problems.append(f"{where}: grade_id {gid!r} is also used by cell {seen[gid]}")
            seen.setdefault(gid, index)
        if strict and not meta:
            problems.append(f"{where}: no nbgrader metadata")
        if is_grade(cell) and is_solution(cell):
            problems.append(f"{where}: manually graded answers are not supported by coursekit grade")
        if meta.get("task") is True:
            problems.append(f"{where}: task cells are graded by hand, not supported by coursekit grade")
        for begin, end, allowed, kind in ((BEGIN_SOLUTION, END_SOLUTION, is_solution(cell), "solution"),
                                          (BEGIN_HIDDEN, END_HIDDEN, is_test(cell), "test")):
            try:
                blocks = marker_blocks(source, begin, end)
            except ValueError as err:
                problems.append(f"{where}: {err}")
                continue
            if blocks and not allowed:
                problems.append(f"{where}: '{begin}' outside a {kind} cell")
            if strict and kind == "solution" and allowed and not blocks:
                problems.append(f"{where}: solution cell without '{BEGIN_SOLUTION}' ... '{END_SOLUTION}'")
        if is_grade(cell) and not is_solution(cell):
            if cell.get("cell_type") != "code":
                problems.append(f"{where}: a test cell must be a code cell")
            points = meta.get("points")
            points = float(points) if isinstance(points, (int, float)) and not isinstance(points, bool) else 0.0
            if strict and not points > 0:
                problems.append(f"{where}: a test cell should be worth more than 0 points")
            total += points
            if gid:
                test_tasks.append(gid)
        elif is_solution(cell):
            if strict and cell.get("cell_type") != "code":
                problems.append(f"{where}: a solution cell must be a code cell")
            if gid:
                solution_tasks.append(gid)
    if not any(is_test(c) for c in nb.cells):
        problems.append("no test cell (grade: true): nothing to grade")
    if strict:
        problems += _course_format(nb, solution_tasks, test_tasks, total)
    return problems


def _course_format(nb, solution_ids: list[str], test_ids: list[str], total: float) -> list[str]:
    problems = []
    for gid in solution_ids:
        if not re.match(r"^task\d+_\w", gid):
            problems.append(f"solution cell id {gid!r} does not follow 'taskN_name'")
    for gid in test_ids:
        if not re.match(r"^test_task\d+_\w", gid):
            problems.append(f"test cell id {gid!r} does not follow 'test_taskN_name'")
    solved, tested = {task_of(g) for g in solution_ids}, {task_of(g) for g in test_ids}
    problems += [f"{t} has a solution cell but no test cell" for t in sorted(solved - tested)]
    problems += [f"{t} has a test cell but no solution cell" for t in sorted(tested - solved)]
    if not 2 <= len(tested) <= 5:
        problems.append(f"{len(tested)} graded tasks; an exercise has 2 to 5")
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown" or not re.search(r"^# \S", first.source, re.M):
        problems.append("the first cell must be markdown with an H1 title")
    elif not re.search(rf"(?<![\d.]){total:g}\s*points?\b", first.source):
        problems.append(f"the first cell does not state the points total ({total:g} points)")
    return problems


def parse_notebook(data: bytes):
    """Read a submitted file leniently into a v4 notebook (sources and metadata only, no outputs).

    Raises ``InvalidNotebook`` with a reason an instructor can read: not UTF-8, not JSON, JSON that is not
    a notebook, a cell that is not a cell. Small schema problems (missing ids, odd outputs) are ignored.
    """
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise InvalidNotebook(f"file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidNotebook("not a text file (not UTF-8): not a notebook") from None
    if not text.strip():
        raise InvalidNotebook("the file is empty")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidNotebook(f"not valid JSON ({err.msg}, line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise InvalidNotebook(f"nested too deeply (more than {MAX_NESTING} levels)") from None
    if _depth_past(raw, MAX_NESTING):
        raise InvalidNotebook(f"nested too deeply (more than {MAX_NESTING} levels)")
    if isinstance(raw, dict) and raw.get("nbformat") == 3:
        try:
            raw = nbformat.convert(nbformat.from_dict(raw), 4)
        except Exception as err:  # noqa: BLE001 - any failure means the old notebook is unreadable
            raise InvalidNotebook(f"an nbformat 3 notebook that cannot be converted ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise InvalidNotebook("valid JSON, but not a Jupyter notebook (no list of cells)")
    cells = []
    for index, cell in enumerate(raw["cells"]):
        kind = cell.get("cell_type") if isinstance(cell, dict) else None
        source = cell.get("source", "") if isinstance(cell, dict) else None
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if kind not in ("code", "markdown", "raw") or not isinstance(source, str):
            raise InvalidNotebook(f"cell {index} is not a notebook cell")
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        new = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
               "raw": nbformat.v4.new_raw_cell}[kind]
        cells.append(new(source=source, metadata=metadata))
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    return nbformat.v4.new_notebook(cells=cells, metadata=metadata)


def read_key(path: str | os.PathLike):
    """Read an instructor's notebook (solutions/ or exercises/); ``ValueError`` with the path if unreadable."""
    try:
        return nbformat.read(os.fspath(path), as_version=4)
    except Exception as err:  # noqa: BLE001 - report any reader failure as one line
        raise ValueError(f"cannot read {path}: {err}") from None


def notebook_text(nb) -> str:
    """The notebook as nbformat writes it (sorted keys, one-space indent), ending in a newline."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def _new_file_mode() -> int:
    """The permissions ``open()`` gives a new file: 0o666 less the umask (``mkstemp`` gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _new_file_mode()  # read once, at import: os.umask is process-wide, not thread-safe


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half of one.

    The file gets the permissions of a file written with ``open()`` (not the private 0o600 of the
    temporary file it is renamed from), so released exercises and grades are readable as usual.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
