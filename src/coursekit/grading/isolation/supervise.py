"""Running the assembled notebook: the runner subprocess (``coursekit.grading.runner``), and the outer
walls that hold whatever happens inside it (the notebook's time limit, a runner that stops reporting)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from coursekit.grading import protocol
from coursekit.grading.isolation import runners, sandbox, trees
from coursekit.grading.assembly import Planned, student_names, submitted_source
from coursekit.grading.notebook import notebook_text, write_atomic
from coursekit.grading.protocol import kill_group
from coursekit.grading.settings import Settings
from coursekit.grading.isolation.warm import Zygote

RUNNER = [sys.executable, "-m", "coursekit.grading.runner"]
STALL_MARGIN = protocol.STALL_MARGIN


_live: set = set()  # the runners now running (subprocess.Popen or runners.Forked)
_live_lock = threading.Lock()


def _read_events(path: Path) -> list[dict]:
    events = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                pass  # a line cut short by a kill
    return events


def stall_limit(settings: Settings) -> float:
    """Seconds the runner may write no event (``protocol.stall_limit`` with this module's ``STALL_MARGIN``)."""
    return protocol.stall_limit(settings.cell_timeout, STALL_MARGIN)


def _supervise(proc, events: Path, settings: Settings) -> str | None:
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


def run_notebook(plan: list[Planned], settings: Settings, env: dict[str, str],
                 zygote: Zygote | None = None) -> tuple[dict[int, dict], str | None]:
    """Run the planned cells in a subprocess; return each cell's outcome by index, and why the run stopped early.

    With ``zygote`` (sandboxed grading), the runner forks its kernels from it instead of starting ``bwrap``."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        p.source, metadata={"coursekit": {"role": p.role, "judged": p.judged}}) for p in plan])
    if plan and plan[0].role == "serve":  # the judge runs the tests (coursekit.grading.judge)
        nb.metadata["coursekit_judge"] = {"student_names": sorted(student_names(plan)),
                                          "submitted": submitted_source(plan)}
    tmp = Path(tempfile.mkdtemp(prefix="coursekit-grade-"))
    try:
        (tmp / "work").mkdir()
        write_atomic(tmp / "graded.ipynb", notebook_text(nb))
        events_path = tmp / "events.jsonl"
        args = [str(tmp / "graded.ipynb"), str(events_path),
                   "--workdir", str(tmp / "work"), "--cell-timeout", str(settings.cell_timeout),
                   "--memory-mb", str(settings.memory_mb), "--max-restarts", str(settings.max_restarts),
                   "--disk-mb", str(settings.disk_mb), "--max-processes", str(settings.max_processes),
                   "--max-files", str(settings.max_files)]
        if settings.sandbox:  # and who the sandbox runs as, decided once here
            args += ["--sandbox", "--unprivileged", "1" if sandbox.unprivileged() else "0"]
        fds: tuple[int, ...] = ()
        if zygote is not None:
            extra, fds = zygote.runner_args()
            args += extra
        stopped = None
        with open(tmp / "runner.log", "wb") as log:
            if settings.warm and runners.available():  # forked with the judge's imports done
                proc = runners.start(args, cwd=str(tmp), env=env, log=log, pass_fds=fds)
            else:
                proc = subprocess.Popen([*RUNNER, *args], stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True,
                                        pass_fds=fds)
            with _live_lock:
                _live.add(proc)
            try:
                stopped = _supervise(proc, events_path, settings)
            finally:
                kill_group(proc.pid)
                proc.wait()
                with _live_lock:
                    _live.discard(proc)
                for event in _read_events(events_path):
                    if event.get("event") == "kernel" and event.get("pid"):
                        kill_group(event["pid"])  # the kernel and anything it started
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
    finally:
        trees.remove(tmp)  # whatever shape the kernel left its sockets folder in


def stop_all() -> None:
    """Kill every grading subprocess still running (after Ctrl-C)."""
    with _live_lock:
        for proc in list(_live):
            kill_group(proc.pid)
