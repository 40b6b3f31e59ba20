"""Warm kernels for the grader: a pool of zygotes (``coursekit.grading.isolation.zygote``), one per worker, each in
its own bubblewrap sandbox, and the client side of their protocol that the runner uses (stdlib only).

The grader checks a zygote out for one submission and passes its pipes to that submission's runner
(``--zygote``); the runner asks it for a kernel (``ZygoteClient.fork``) instead of starting ``bwrap``. A
zygote goes back into the pool only when no kernel of it is left (``Zygote.idle``); otherwise, or when it
died, it is killed and the next submission starts a new one. ``preload(sources)`` is what a zygote
imports: every module the key's code cells import (the key is the instructor's, so importing it is safe).

Warm kernels only save time; they are never needed. A zygote must first fork a probe kernel through every
wall (``Zygote._probe``): where that fails (nested user namespaces refused, say), the pool gives out no
zygote and each kernel starts from nothing in its own ``bwrap``, as it does when a runner's zygote fails
to fork (``ZygoteError``).
"""

from __future__ import annotations

import ast
import json
import os
import select
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from coursekit.grading.isolation import sandbox, trees
from coursekit.grading.protocol import KERNEL_START, kill_group

ZYGOTE_START = 180.0  # seconds a zygote may take to import what the key imports
# What a forked kernel adds to its zygote's data before it answers (thread stacks, ZMQ, first allocations).
# The course's key preloads 990 MB of data: --memory-mb 1024 killed every kernel at start; 1250 grades
# solutions/01 to 10/10.
KERNEL_START_MB = 256


# Imported lazily by what the key uses, at a cost every kernel would pay again: torch imports torch._dynamo
# (and sympy) on an optimizer's first step, 0.9 CPU-s.
LAZY = {"torch": ("torch._dynamo",)}


def preload(cells_sources: list[str]) -> list[str]:
    """The absolute modules imported by these code cells, in order of first appearance, and the modules
    they import lazily (``LAZY``)."""
    names: dict[str, None] = {}
    for source in cells_sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(dict.fromkeys(a.name for a in node.names))
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names[node.module] = None
    for name in list(names):
        names.update(dict.fromkeys(LAZY.get(name.split(".")[0], ())))
    return list(names)


def host_pid(parent: int, nspid: int, level: int) -> int | None:
    """The pid, as this process sees it, of the descendant of ``parent`` whose pid in the namespace ``level``
    deep (0: this process's) is ``nspid``; or None."""
    import psutil

    try:
        children = psutil.Process(parent).children(recursive=True)
    except psutil.Error:
        return None
    for child in children:
        try:
            for line in open(f"/proc/{child.pid}/status"):
                if line.startswith("NSpid:"):
                    pids = [int(p) for p in line.split()[1:]]
                    if len(pids) > level and pids[level] == nspid:
                        return child.pid
        except (OSError, ValueError):
            continue
    return None


class ZygoteError(RuntimeError):
    """The zygote could not fork a kernel (or is gone)."""


class ZygoteClient:
    """The runner's end of a zygote: ``fork`` a kernel, ``poll`` for its exit (pipes given by the grader)."""

    def __init__(self, to_zygote: int, from_zygote: int, pid: int, sockets: str):
        self.to_zygote, self.from_zygote, self.pid, self.sockets = to_zygote, from_zygote, pid, sockets
        self._pending = b""
        self.exits: dict[int, int] = {}  # the init's pid in the zygote -> exit code
        self.dead = False

    def _lines(self, timeout: float) -> list[dict]:
        ready, _, _ = select.select([self.from_zygote], [], [], max(0.0, timeout))
        if not ready:
            return []
        chunk = os.read(self.from_zygote, 65536)
        if not chunk:
            self.dead = True
            return []
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def _take(self, messages: list[dict]) -> dict | None:
        answer = None
        for m in messages:
            if m.get("event") == "exit":
                self.exits[m["pid"]] = m["code"]
            elif m.get("event") in ("forked", "error"):
                answer = m
        return answer

    def fork(self, argv: list[str], sockets: str, *, disk_mb: int, memory_mb: int, file_mb: int,
             nproc: int) -> tuple[int, int]:
        """A new kernel running ipykernel with ``argv``: its init's (pid in the zygote, pid here)."""
        request = {"op": "fork", "argv": argv, "sockets": sockets, "disk_mb": disk_mb, "memory_mb": memory_mb,
                   "file_mb": file_mb, "nproc": nproc}
        try:
            os.write(self.to_zygote, (json.dumps(request) + "\n").encode())
        except OSError as err:
            raise ZygoteError(f"the zygote is gone ({err})") from err
        deadline = time.monotonic() + KERNEL_START
        while not self.dead and time.monotonic() < deadline:
            answer = self._take(self._lines(deadline - time.monotonic()))
            if answer is None:
                continue
            if answer["event"] == "error":
                raise ZygoteError(f"the zygote could not start a kernel: {answer['error']}")
            here = host_pid(self.pid, answer["pid"], 1)
            if here is None:
                raise ZygoteError("the zygote's kernel died as it started")
            return answer["pid"], here
        raise ZygoteError("the zygote did not answer" if not self.dead else "the zygote died")

    def poll(self, nspid: int) -> int | None:
        """The kernel's exit code once the zygote has reaped it (``128 + n``: killed by signal n)."""
        if nspid not in self.exits and not self.dead:
            self._take(self._lines(0))
        if self.dead and nspid not in self.exits:
            return -9
        return self.exits.get(nspid)


class Zygote:
    """One warm zygote in its own sandbox, owned by the grader."""

    def __init__(self, env: dict[str, str], modules: list[str]):
        self.folder = Path(tempfile.mkdtemp(prefix="coursekit-zygote-"))
        self.sockets = self.folder / "sockets"
        self.sockets.mkdir(mode=0o700)
        sandbox.reachable(self.folder)  # the sandbox's host user binds sockets/ and the kernels' k*/ below it
        sandbox.reachable(self.sockets)
        argv = sandbox.zygote_argv(str(self.sockets), env)
        with open(self.folder / "zygote.log", "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         cwd=self.folder, start_new_session=True)
        # What to preload goes on stdin: on the zygote's command line every kernel could read it in /proc.
        os.write(self.proc.stdin.fileno(), (json.dumps({"preload": modules}) + "\n").encode())
        self.client = ZygoteClient(self.proc.stdin.fileno(), self.proc.stdout.fileno(), 0, str(self.sockets))
        deadline = time.monotonic() + ZYGOTE_START
        ready = None
        while ready is None and not self.client.dead and time.monotonic() < deadline:
            ready = next((m for m in self.client._lines(deadline - time.monotonic()) if m.get("event") == "ready"),
                         None)
        pid = host_pid(self.proc.pid, ready["pid"], 1) if ready else None
        why = None if pid is not None else "it did not start"
        if pid is not None:
            self.pid = self.client.pid = pid
            why = self._probe()
        if why:
            log = (self.folder / "zygote.log").read_text(errors="replace")[-2000:]
            self.close()
            raise RuntimeError(f"no warm kernels: {why}; {log.strip() or 'no output'}")

    def _probe(self) -> str | None:
        """Fork one kernel that only prints ipykernel's version (every wall built, capabilities dropped):
        None when it exits cleanly, else why not (nested user namespaces refused, say)."""
        sockets = self.sockets / "probe"
        sockets.mkdir()
        sandbox.hand_over(sockets)
        try:
            nspid, _ = self.client.fork(["--version"], str(sockets), disk_mb=1, memory_mb=0, file_mb=1, nproc=64)
        except ZygoteError as err:
            return str(err)
        deadline = time.monotonic() + KERNEL_START
        while self.client.poll(nspid) is None and time.monotonic() < deadline:
            self.client._take(self.client._lines(0.1))
        code = self.client.poll(nspid)
        trees.remove(sockets)
        return None if code == 0 else f"a probe kernel exited with code {code}"

    def runner_args(self) -> tuple[list[str], tuple[int, int]]:
        """The runner's ``--zygote`` argument and the descriptors it must inherit."""
        fds = (self.proc.stdin.fileno(), self.proc.stdout.fileno())
        return ["--zygote", f"{fds[0]},{fds[1]},{self.pid},{self.sockets}"], fds

    def idle(self, wait: float = 2.0) -> bool:
        """Alive, with no kernel left (every one reaped) and the sockets folder emptied: fit for the next student."""
        import psutil

        deadline = time.monotonic() + wait
        while True:
            try:
                alive = self.proc.poll() is None and not psutil.Process(self.pid).children()
            except psutil.Error:
                alive = False
            if alive or time.monotonic() > deadline or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not alive:
            return False
        self.client._take(self.client._lines(0))  # exit lines left by the last runner
        for entry in self.sockets.iterdir():
            trees.remove(entry)
        # A kernel whose sandbox runs as root could raise the zygote's OOM score, which the next kernels
        # would inherit: set it back (the grader may lower it; the kernel could not).
        for pid in (self.pid, *(c.pid for c in psutil.Process(self.proc.pid).children(recursive=True))):
            try:
                Path(f"/proc/{pid}/oom_score_adj").write_text("0")
            except OSError:
                pass
        return not self.client.dead

    def close(self) -> None:
        kill_group(self.proc.pid)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        trees.remove(self.folder)


class ZygotePool:
    """Zygotes for the grader's worker threads, started on first use; ``close`` kills them all. Where a
    zygote cannot start, ``take`` gives None from then on (the runner starts each kernel from nothing) and
    ``failed`` says why."""

    def __init__(self, env: dict[str, str], modules: list[str]):
        self.env, self.modules = env, modules
        self._free: list[Zygote] = []
        self._all: set[Zygote] = set()
        self._lock = threading.Lock()
        self.closed = False
        self.failed: str | None = None

    def take(self) -> Zygote | None:
        with self._lock:
            if self._free:
                return self._free.pop()
            if self.failed:
                return None
        try:
            zygote = Zygote(self.env, self.modules)
        except (RuntimeError, OSError) as err:
            self.failed = str(err)
            return None
        with self._lock:
            self._all.add(zygote)
            if self.closed:
                self._all.discard(zygote)
                zygote.close()
                raise RuntimeError("grading was stopped")
        return zygote

    def require_memory(self, memory_mb: int) -> None:
        """``ValueError`` naming the minimum when ``memory_mb`` (the kernels' data limit, 0: none) is below
        what a kernel forked from these zygotes needs: a zygote's data (``VmData``, what ``RLIMIT_DATA``
        counts, measured) plus ``KERNEL_START_MB``. Nothing is checked where no zygote starts."""
        if memory_mb <= 0:
            return
        zygote = self.take()
        if zygote is None:
            return
        try:
            status = Path(f"/proc/{zygote.pid}/status").read_text()
            data_mb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmData:")) // 1024
        except (OSError, StopIteration, ValueError):
            data_mb = None
        finally:
            self.give_back(zygote)
        if data_mb is not None and data_mb + KERNEL_START_MB > memory_mb:
            need = data_mb + KERNEL_START_MB
            raise ValueError(f"--memory-mb {memory_mb} is below what a kernel of this key needs: {need} MB "
                             f"(measured: {data_mb} MB of data once {', '.join(self.modules[:3]) or 'ipykernel'}"
                             f"{' ...' if len(self.modules) > 3 else ''} is imported, plus {KERNEL_START_MB} MB to "
                             f"start a kernel); pass --memory-mb {need} or more")

    def give_back(self, zygote: Zygote | None) -> None:
        """Keep ``zygote`` for the next submission if it is idle and clean, else kill it."""
        if zygote is None:
            return
        if not self.closed and zygote.idle():
            with self._lock:
                self._free.append(zygote)
            return
        with self._lock:
            self._all.discard(zygote)
        zygote.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            zygotes, self._all, self._free = list(self._all), set(), []
        for zygote in zygotes:
            zygote.close()
