"""Warm runners: each notebook's grading process (``coursekit.grading.runner``, which holds the judge) forked
from a server that has already imported what the judge needs, as warm kernels are forked from a zygote.

The server is the standard library's fork server (``multiprocessing``, start method ``"forkserver"``),
started once per grading process with the judge's modules and the key's imports preloaded (torch above
all: about 1.5 CPU-seconds that no notebook pays again). A runner forked from it is a fresh copy of that
server, never of an earlier runner, so nothing passes from one submission to the next. Where there is no
fork server (Windows), or with ``Settings(warm=False)``, each runner is a new Python process instead.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from multiprocessing import reduction

JUDGE_MODULES = ["coursekit.grading.runner", "coursekit.grading.judge", "coursekit.grading.wire", "torch"]


def available() -> bool:
    return "forkserver" in multiprocessing.get_all_start_methods()


def preload(modules: list[str]) -> None:
    """Have the fork server import the judge's modules and ``modules`` when it starts (its first runner)."""
    if available():
        wanted = list(dict.fromkeys(JUDGE_MODULES + [m for m in modules if m != "__main__"]))
        multiprocessing.get_context("forkserver").set_forkserver_preload(wanted)


class _Fd:
    """A file descriptor handed to the forked runner (the fork server passes it over its socket, as
    ``multiprocessing`` does for a ``Connection``)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self):
        return _Fd._rebuild, (reduction.DupFd(self.fd),)

    @staticmethod
    def _rebuild(dup) -> _Fd:
        return _Fd(dup.detach())


def _child(argv: list[str], cwd: str, env: dict[str, str], log: _Fd, fds: dict[int, _Fd]) -> None:
    """The forked runner: a session of its own, standard output and error to the log, then ``runner.main``."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log.fd, 1)
    os.dup2(log.fd, 2)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    # the descriptors argv names (``--zygote TO,FROM,...``) have other numbers here
    argv = [",".join(str(fds[int(p)].fd) if p.isdigit() and int(p) in fds else p for p in a.split(","))
            if i and argv[i - 1] == "--zygote" else a for i, a in enumerate(argv)]
    from coursekit.grading import runner

    sys.exit(runner.main(argv))


class Forked:
    """A runner forked from the fork server, seen as a ``subprocess.Popen`` is (pid, poll, wait, returncode)."""

    def __init__(self, process):
        self.process, self.pid = process, process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode  # as Popen's: -N when killed by signal N

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired("coursekit.grading.runner", timeout or 0)
        return self.process.exitcode


def start(argv: list[str], *, cwd: str, env: dict[str, str], log, pass_fds: tuple[int, ...] = ()) -> Forked:
    """Fork a runner with arguments ``argv`` from the fork server (see the module docstring)."""
    context = multiprocessing.get_context("forkserver")
    process = context.Process(target=_child, args=(argv, cwd, env, _Fd(log.fileno()),
                                                   {fd: _Fd(fd) for fd in pass_fds}), daemon=False)
    process.start()
    return Forked(process)
