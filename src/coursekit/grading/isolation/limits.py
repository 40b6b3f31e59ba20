"""The limits around one graded kernel, as the runner applies them (stdlib and psutil only).

* ``set_limits``: the runner's own rlimits, which its kernel inherits (file size, no core files; the heap
  limit is the kernel's own: ``sandbox.launch_argv``);
* ``Watchdog``: a thread that kills a kernel whose cell overran its hard deadline, whatever the event loop
  is doing;
* ``watch``: the poll that kills a kernel past the memory limit, or a sandbox past the process, file or
  disk limit (``RLIMIT_NPROC`` does not bind root);
* ``become_subreaper``: orphans the kernel leaves come back to the runner, which kills them.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from coursekit.grading.isolation import sandbox, trees
from coursekit.grading.isolation.cgroups import KernelGroup
from coursekit.grading.protocol import kill_tree


def set_limits(file_mb: int) -> None:
    """Limit this process and every child it starts (the kernel): file size, no core files."""
    try:
        import resource
    except ImportError:  # Windows: the watchdog and the timeouts still apply
        return
    for limit, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, file_mb * 2**20)):
        soft, hard = resource.getrlimit(limit)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, hard))


def become_subreaper() -> None:
    """Linux: orphaned descendants (a daemon the kernel double-forked) are re-parented to this process."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def open_files(procs) -> tuple[int, int]:
    """Bytes held by the processes' open files that no folder shows: ``(unlinked, memfd)``, each file
    counted once (allocated blocks). A walk of the folders misses both; a memfd is memory, not disk."""
    seen: set[tuple[int, int]] = set()
    unlinked = memfd = 0
    for p in procs:
        try:
            fds = os.listdir(f"/proc/{p.pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{p.pid}/fd/{fd}"
            try:
                target = os.readlink(path)
                if not (target.startswith("/memfd:") or target.endswith(" (deleted)")):
                    continue
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen or not stat.S_ISREG(st.st_mode):
                continue
            seen.add((st.st_dev, st.st_ino))
            if target.startswith("/memfd:"):
                memfd += st.st_blocks * 512
            else:
                unlinked += st.st_blocks * 512
    return unlinked, memfd


def proportional(procs) -> int:
    """The processes' proportional set size (PSS): pages they share, with each other or with a zygote, counted
    once. Slower than RSS, so read only when the RSS sum is past the limit (Linux; else the RSS sum)."""
    total = 0
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
        except (OSError, StopIteration, ValueError):
            try:
                total += p.memory_info().rss
            except Exception:  # noqa: BLE001 - gone
                pass
    return total


class Watchdog:
    """A thread that kills the kernel when a cell overruns its hard deadline (sleeps between checks)."""

    def __init__(self):
        self.deadline: float | None = None
        self.pid: int | None = None
        self.fired = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cell-watchdog", daemon=True)
        self._thread.start()

    def arm(self, pid: int | None, seconds: float) -> None:
        with self._lock:
            self.pid, self.deadline, self.fired = pid, time.monotonic() + seconds, False

    def disarm(self) -> None:
        with self._lock:
            self.deadline = None

    def close(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                due = self.deadline is not None and time.monotonic() > self.deadline
                if due:
                    self.deadline, self.fired, pid = None, True, self.pid
            if due:
                kill_tree(pid)


@dataclass(frozen=True)
class Limits:
    """What one kernel may use: ``memory_mb`` (0: no limit), and in a sandbox processes, files and disk."""

    memory_mb: int
    disk_mb: int
    max_processes: int
    max_files: int
    tasks: int  # processes and threads (a control group's pids.max)


def group_reason(hit: str, limits: Limits) -> str:
    """The row's reason for a limit the kernel's control group reached (``KernelGroup.hit``)."""
    if hit == "memory":
        return f"memory limit ({limits.memory_mb} MB) exceeded"
    return f"process limit ({limits.max_processes}) exceeded ({limits.tasks} processes and threads at most)"


def _sandbox_counts(pid: int, procs: list, forked: bool) -> tuple[int, int]:
    """Processes and files in the sandbox whose ``bwrap`` is ``pid``, seen through its init's root (for
    a ``forked`` kernel, ``pid`` is its namespace's init and ``procs`` all its processes)."""
    import psutil

    if forked:
        try:
            files = 0
            for folder in (sandbox.WORKDIR, "/dev/shm"):
                st = os.statvfs(f"/proc/{pid}/root{folder}")
                files += st.f_files - st.f_ffree
            return len(procs), files
        except OSError:
            return len(procs), 0
    try:
        init = psutil.Process(pid).children()[0].pid
        root = f"/proc/{init}/root"
        processes = sum(name.isdigit() for name in os.listdir(f"{root}/proc"))
        files = 0
        for folder in ("/tmp", "/dev/shm"):
            st = os.statvfs(root + folder)
            files += st.f_files - st.f_ffree
        return processes, files
    except (psutil.Error, IndexError, OSError):
        return 0, 0


async def watch(pid: int, limits: Limits, *, sockets: str | None, forked: bool,
                on_limit: Callable[[str], None], group: KernelGroup | None = None) -> None:
    """Poll the kernel ``pid`` until it passes a limit, then tell ``on_limit`` which one and kill it.
    ``sockets``: the host folder of its sockets, counted too (sandboxed kernels only). ``group``: its
    control group, whose limits the Linux kernel enforces; a limit it reached (sticky counters) is named."""
    import psutil

    limit = limits.memory_mb * 2**20
    try:
        kernel = psutil.Process(pid)
        while True:
            await asyncio.sleep(0.1)
            hit = group.hit() if group is not None else None
            why = group_reason(hit, limits) if hit else None
            procs = [kernel, *kernel.children(recursive=True)]
            if why is None and sockets is not None:
                processes, files = _sandbox_counts(pid, procs, forked)
                # the sockets folder is the host's, outside the sandbox's tmpfs: count it too
                entries, size = trees.usage(sockets, limit=limits.max_files)
                unlinked, memfd = open_files(procs)
                size += unlinked
                if processes > limits.max_processes:
                    why = f"process limit ({limits.max_processes}) exceeded"
                elif files + entries > limits.max_files:
                    why = f"file count limit ({limits.max_files}) exceeded"
                elif size > limits.disk_mb * 2**20:
                    why = f"disk limit ({limits.disk_mb} MB) exceeded"
            if why is None and limits.memory_mb > 0 and group is None:  # a group counts all of it already
                extra = memfd if sockets is not None else open_files(procs)[1]  # memfds no map may show
                rss = extra
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                if rss > limit and proportional(procs) + extra > limit:
                    why = f"memory limit ({limits.memory_mb} MB) exceeded"
            if why:
                on_limit(why)
                kill_tree(pid)
                return
    except psutil.Error:
        return
