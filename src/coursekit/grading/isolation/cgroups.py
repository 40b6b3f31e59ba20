"""A control group per graded kernel, so that the Linux kernel itself enforces its memory and task limits
(stdlib only).

``KernelGroup.make(...)`` creates, below the runner's own groups, one memory group and one pids group
(cgroup v1, as on hybrid hosts where each controller has its own hierarchy) or one group with both
controllers (cgroup v2), the way ``systemd-run --scope -p MemoryMax= -p TasksMax=`` does:

* memory: ``memory.limit_in_bytes`` (v1) or ``memory.max`` (v2) counts every page the group's processes
  fault in: anonymous memory, page cache, and shared memory (``/dev/shm``, tmpfs, ``memfd_create``, a
  nested namespace's own tmpfs), so a kernel past it is killed by the kernel's OOM killer, whatever
  polling misses;
* pids: ``pids.max`` counts processes and threads: ``fork`` and ``clone`` fail past it.

The runner moves the kernel's processes in before the first cell runs (``add``); what they start stays
in. ``hit()`` says which limit was reached (the OOM kill count and ``pids.events``, both sticky), so the
row can name it. Where no group can be made (no controller mounted, no delegation to a user that is not
root) ``unavailable()`` says why, and the runner's poll (``limits.watch``) is the only wall.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own(controller: str) -> Path | None:
    """The folder of this process's group for ``controller`` ("" for the v2 hierarchy), if mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller and controller in names.split(",")) or (not controller and names == ""):
            base = ROOT / controller if controller else (ROOT / "unified" if (ROOT / "unified").is_dir() else ROOT)
            folder = base / path.lstrip("/")
            return folder if folder.is_dir() else None
    return None


def _layout() -> tuple[str, Path, Path] | str:
    """("v1", memory folder, pids folder), ("v2", group folder, same) or why neither can be used."""
    memory, pids = _own("memory"), _own("pids")
    if memory is not None and pids is not None:
        if os.access(memory, os.W_OK) and os.access(pids, os.W_OK):
            return "v1", memory, pids
        return "the memory and pids groups of this process are not writable (no delegation)"
    unified = _own("")
    if unified is not None and (unified / "cgroup.controllers").is_file():
        controllers = (unified / "cgroup.subtree_control").read_text().split() \
            if (unified / "cgroup.subtree_control").is_file() else []
        if not {"memory", "pids"} <= set(controllers):
            return "cgroup v2 without the memory and pids controllers delegated to this process's group"
        if not os.access(unified, os.W_OK):
            return "this process's cgroup v2 group is not writable (no delegation)"
        return "v2", unified, unified
    return "no memory and pids cgroup controllers mounted"


def unavailable() -> str | None:
    """``None`` when a group per kernel can be made here, else why not (one line)."""
    layout = _layout()
    return layout if isinstance(layout, str) else None


def describe() -> str:
    """What enforces the limits here, for ``grades.json``: ``"cgroup v1"``, ``"cgroup v2"`` or ``"poll (...)"``."""
    layout = _layout()
    return f"poll ({layout})" if isinstance(layout, str) else f"cgroup {layout[0]}"


def _read_counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class KernelGroup:
    """The groups of one kernel: ``folders`` (one per hierarchy), ``version`` "v1" or "v2"."""

    version: str
    folders: tuple[Path, ...]

    @classmethod
    def make(cls, *, memory_mb: int, tasks: int) -> KernelGroup | None:
        """A new group limited to ``memory_mb`` (0: no memory limit) and ``tasks`` processes and threads;
        None where ``unavailable()``."""
        layout = _layout()
        if isinstance(layout, str):
            return None
        version, memory, pids = layout
        name = f"coursekit-kernel-{uuid.uuid4().hex[:12]}"
        folders = tuple(dict.fromkeys((memory / name, pids / name)))
        try:
            for folder in folders:
                folder.mkdir()
            if version == "v1":
                if memory_mb > 0:
                    (folders[0] / "memory.limit_in_bytes").write_text(str(memory_mb * 2**20))
                    swap = folders[0] / "memory.memsw.limit_in_bytes"
                    if swap.exists():  # no way around the limit through swap
                        swap.write_text(str(memory_mb * 2**20))
                (folders[-1] / "pids.max").write_text(str(tasks))
            else:
                if memory_mb > 0:
                    (folders[0] / "memory.max").write_text(str(memory_mb * 2**20))
                    (folders[0] / "memory.swap.max").write_text("0")
                (folders[0] / "pids.max").write_text(str(tasks))
        except OSError:
            cls(version, folders).remove()
            return None
        return cls(version, folders)

    def add(self, pids: list[int]) -> None:
        """Move these processes (each with all its threads) into the group."""
        for folder in self.folders:
            for pid in pids:
                try:
                    (folder / "cgroup.procs").write_text(str(pid))
                except OSError:  # gone already
                    pass

    def hit(self) -> str | None:
        """Which limit the group reached: ``"memory"`` (the OOM killer killed in it), ``"tasks"`` (a fork
        or thread was refused), or None."""
        memory, pids = self.folders[0], self.folders[-1]
        oom = memory / ("memory.oom_control" if self.version == "v1" else "memory.events")
        if _read_counter(oom, "oom_kill") > 0:
            return "memory"
        if _read_counter(pids / "pids.events", "max") > 0:
            return "tasks"
        return None

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.folders[-1] / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def remove(self) -> None:
        """Kill whatever is left in the group, then remove it."""
        for _ in range(50):
            left = self.pids()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            removed = True
            for folder in self.folders:
                try:
                    folder.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    removed = False
            if removed:
                return
            time.sleep(0.02)
