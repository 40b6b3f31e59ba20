"""The contract between the grader (``supervise``) and the runner (``runner``), written once (stdlib only).

The grader starts ``python -m coursekit.grading.runner NOTEBOOK EVENTS ...`` in a new session for each
submission; the runner starts the kernel (in the sandbox, ``coursekit.grading.isolation.sandbox``), runs the cells
and appends one JSON line per event to EVENTS, a file in a folder the sandboxed kernel cannot see. Every
outcome in EVENTS is what the runner observed over the Jupyter protocol (execute replies, errors, the
partial-credit record); a cell with no ``end`` event was not observed and never scores.

Events: ``{"event": "kernel", "pid": ...}``, ``{"event": "start", "cell": i}``, ``{"event": "end",
"cell": i, "status": "ok" | "error" | "timeout" | "died", ...}``, ``{"event": "restart", ...}``,
``{"event": "replay", "cell": i}``, ``{"event": "abort", "reason": ...}``, ``{"event": "crash", ...}``,
``{"event": "done"}``.

Time limits, from the inside out: a cell is interrupted at ``cell_timeout``; a kernel that does not
answer within ``grace(cell_timeout)`` is killed; the runner's watchdog thread kills it at
``hard_limit(cell_timeout)`` whatever the event loop is doing; the grader kills the runner when it has
written nothing for ``stall_limit(cell_timeout)`` or at the notebook's limit.
"""

from __future__ import annotations

import os
import signal

PARTIAL_CREDIT_MIME = "application/vnd.coursekit.partial-credit+json"
HARD_MARGIN = 5.0     # after the grace period, before the watchdog thread kills a kernel
KERNEL_START = 60.0   # seconds a kernel may take to start
STALL_MARGIN = 80.0   # HARD_MARGIN, a kernel start and some slack
EVENTS = ("kernel", "start", "end", "restart", "replay", "abort", "crash", "done")


def grace(cell_timeout: float) -> float:
    """How long an interrupted kernel has to answer before it is killed."""
    return min(10.0, max(1.0, cell_timeout))


def hard_limit(cell_timeout: float) -> float:
    return cell_timeout + grace(cell_timeout) + HARD_MARGIN


def stall_limit(cell_timeout: float, margin: float = STALL_MARGIN) -> float:
    """Seconds the runner may write no event: a cell's limit, the grace period and ``margin``."""
    return cell_timeout + grace(cell_timeout) + margin


def kill_group(pid: int | None) -> None:
    """SIGKILL the process group ``pid`` leads (no error if it is gone)."""
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def kill_tree(pid: int | None, *, include_self: bool = True) -> None:
    """SIGKILL ``pid``'s process group and every descendant of ``pid`` (those that left the group too)."""
    import psutil

    if pid is None:
        return
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + ([root] if include_self else [])
    except psutil.Error:
        procs = []
    if include_self:
        kill_group(pid)
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
