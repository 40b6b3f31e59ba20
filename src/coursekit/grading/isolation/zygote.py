"""The warm kernel factory (a "zygote"): one process per grading worker, inside its own bubblewrap sandbox,
that has imported ipykernel and what the key imports, and forks a fresh kernel for each request (stdlib only).

A kernel that starts from nothing spends most of its CPU on start-up and imports (torch alone is 1.5 CPU-s);
the zygote pays that once per worker. It never runs student code. Each kernel it forks is isolated from it,
and from every earlier or later kernel, before any student code runs:

* the zygote's sandbox (``coursekit.grading.isolation.sandbox.zygote_argv``) is today's kernel sandbox: the kernel still
  sees nothing of the key, the submissions, the grades, the runner or the network;
* new user, mount, PID, network, IPC and UTS namespaces nested in it: the kernel cannot name (signal,
  ``ptrace``, ``pidfd``) the zygote or any other kernel, and has a network of its own with nothing on it;
* its own file system view: a fresh tmpfs of ``disk_mb`` at ``/tmp/work`` (its working folder and home) and
  at ``/dev/shm``; the zygote's ``/tmp`` read-only; of the sockets folder, only its own subfolder writable;
* no capabilities (bounding set emptied too), ``no_new_privs``, the runner's limits (data size, file size,
  no core files, processes); a kernel that cannot be locked down this way is not started;
* the zygote is not dumpable (``PR_SET_DUMPABLE`` 0) and the kernel holds no capability in the zygote's user
  namespace, so ``/proc/<zygote>/mem``, ``environ``, ``fd``, ``cwd`` and ``ptrace`` are refused; the kernel
  shares no writable memory with it (``fork``: copy-on-write) and holds none of its file descriptors.

What a forked kernel shares with the zygote, and so with the kernels before it: the memory image after the
imports (read-only in effect: each side writes its own copy), and the read-only ``/proc`` of the zygote's
sandbox (a new ``/proc`` cannot be mounted inside bubblewrap), where it sees the zygote's and its own
processes' command lines, not their memory or files. Kernels from one zygote run one at a time; the grader
hands a zygote to the next submission only when none of its kernels is left (``coursekit.grading.isolation.warm``).

Process tree of one kernel: the zygote forks a child that enters the namespaces, mounts and drops its
capabilities, forks the new PID namespace's init and exits; the init (re-parented to the zygote, a
subreaper) forks the kernel and exits with its status (``128 + n`` for a signal, as bubblewrap does).

Protocol, one JSON object a line: the zygote reads ``{"preload": [modules]}`` first, imports them, writes
``{"event": "ready", "pid": ...}`` once, then reads
``{"op": "fork", "argv": [...], "sockets": DIR, "disk_mb": ..., "memory_mb": ..., "file_mb": ...,
"nproc": ...}`` on stdin and answers ``{"event": "forked", "pid": ...}`` (the init's pid in the zygote's
namespace) or ``{"event": "error", "error": ...}``; later ``{"event": "exit", "pid": ..., "code": ...}``.
It exits when stdin closes.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import select
import signal
import sys

WORKDIR = "/tmp/work"
_NEWNS, _NEWUTS, _NEWIPC, _NEWUSER, _NEWPID, _NEWNET = 0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
_ST_LOCKED = 2 | 4 | 8 | 1024 | 2048  # statvfs: nosuid, nodev, noexec, noatime, nodiratime (kept on remount)
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 4, 24, 36, 38, 47

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _read_only(path: str) -> None:
    """Remount the mount at ``path`` read-only in this mount namespace, keeping its locked flags."""
    flags = os.statvfs(path).f_flag & _ST_LOCKED
    _mount(None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | flags)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _enter_namespaces() -> None:
    """New user, mount, PID, network, IPC and UTS namespaces; this process keeps its uid and gid."""
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(_NEWUSER | _NEWNS | _NEWPID | _NEWNET | _NEWIPC | _NEWUTS), "unshare")
    # The zygote is not dumpable, so this child's /proc/self files belong to root; where the sandbox's host
    # user is not root (a root grader's sandbox runs as nobody), the child could not write its own maps.
    # It is the kernel-to-be, in namespaces of its own: dumpable like any kernel. The zygote stays not.
    _check(_libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0), "PR_SET_DUMPABLE")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def _mount_work(sockets: str, disk_mb: int) -> None:
    """The kernel's own file system view (see the module's docstring)."""
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    _read_only("/tmp")
    tmpfs = f"size={max(1, disk_mb)}m"
    _mount("tmpfs", WORKDIR, "tmpfs", _MS_NOSUID | _MS_NODEV, tmpfs + ",mode=0700")
    _mount("tmpfs", "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, tmpfs + ",mode=1777")
    _mount(sockets, sockets, None, _MS_BIND)          # its own subfolder stays writable ...
    _read_only(os.path.dirname(sockets))                # ... the folder of every worker's sockets does not
    os.chdir(WORKDIR)


def _limit(memory_mb: int, file_mb: int, nproc: int) -> None:
    import resource

    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, file_mb * 2**20), (resource.RLIMIT_NPROC, nproc)]
    if memory_mb > 0:
        wanted.append((resource.RLIMIT_DATA, memory_mb * 2**20))
    for limit, value in wanted:
        resource.setrlimit(limit, (value, value))


def _drop_privileges() -> None:
    """No capability, now or after an ``exec`` (bounding and ambient sets emptied), and ``no_new_privs``."""
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _check(_libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), "PR_CAPBSET_DROP")
    _check(_libc.prctl(_PR_CAP_AMBIENT, 4, 0, 0, 0), "PR_CAP_AMBIENT_CLEAR_ALL")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()                  # effective, permitted, inheritable: all zero
    _check(_libc.capset(header, data), "capset")
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(status[field].strip(), 16):
            raise OSError(f"capabilities left after dropping them ({field}: {status[field].strip()})")
    if status["NoNewPrivs"].strip() != "1":
        raise OSError("no_new_privs not set")


def _only_standard_fds() -> None:
    """stdin, stdout and stderr on /dev/null; every other descriptor (the zygote's pipes) closed."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, 65536)


def _kernel(argv: list[str]) -> None:
    """The kernel itself: ipykernel, already imported, started as ``ipykernel_launcher`` would."""
    os.setsid()
    sys.argv = ["ipykernel_launcher", *argv]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=list(argv))


def _init(argv: list[str]) -> None:
    """PID 1 of the kernel's namespace: fork the kernel, wait, exit with its status (128 + n for signal n)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)  # PID 1 gets no signal from its namespace without a handler
    os.setpgid(0, 0)  # a group of its own: the grader's kill_group(pid) ends the namespace
    kernel = os.fork()
    if kernel == 0:
        code = 1
        try:
            _kernel(argv)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
        finally:
            os._exit(code)
    while True:
        pid, status = os.waitpid(-1, 0)  # orphans in the namespace are re-parented here: reap them too
        if pid == kernel:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


def _child(request: dict, report: int) -> None:
    """The forked child: isolate, lock down, fork the namespace's init, report its pid, exit."""
    try:
        _enter_namespaces()
        _mount_work(request["sockets"], int(request["disk_mb"]))
        _limit(int(request["memory_mb"]), int(request["file_mb"]), int(request["nproc"]))
        _drop_privileges()
        init = os.fork()
    except BaseException as err:  # noqa: BLE001 - reported; no kernel is started
        os.write(report, json.dumps({"error": f"{type(err).__name__}: {err}"}).encode())
        os._exit(1)
    if init:
        os.write(report, json.dumps({"pid": init}).encode())
        os._exit(0)
    try:
        _only_standard_fds()
        _init(list(request["argv"]))
    finally:
        os._exit(1)


def _fork(request: dict) -> dict:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        try:
            _child(request, write)
        finally:
            os._exit(1)
    os.close(write)
    answer = b""
    while chunk := os.read(read, 4096):
        answer += chunk
    os.close(read)
    os.waitpid(child, 0)
    try:
        told = json.loads(answer)
    except ValueError:
        told = {"error": "the forked child said nothing"}
    if "pid" in told:
        return {"event": "forked", "pid": told["pid"]}
    return {"event": "error", "error": told.get("error", "?")}


def _first_line() -> dict:
    """The first line of stdin, read byte by byte so that nothing after it is consumed."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(0, 1)
        if not byte:
            break
        line += byte
    return json.loads(line or b"{}")


def serve() -> None:
    """Import the modules the first line of stdin names (``{"preload": [...]}``), then fork kernels on
    request until stdin closes."""
    preload = _first_line().get("preload", [])
    sys.path[:] = [p for p in sys.path if p]  # not the working folder
    _check(_libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE")
    _check(_libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "PR_SET_CHILD_SUBREAPER")
    for name in ["ipykernel.kernelapp", "ipykernel.ipkernel", *preload]:
        try:
            importlib.import_module(name)
        except BaseException as err:  # noqa: BLE001 - a module the key imports may fail here: the kernel will say so
            print(f"zygote: not preloaded: {name}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    import gc

    gc.collect()
    gc.freeze()  # fewer pages copied into each kernel

    def say(message: dict) -> None:
        os.write(1, (json.dumps(message) + "\n").encode())

    say({"event": "ready", "pid": os.getpid()})
    waiting: dict[int, int] = {}  # pidfd -> pid of a kernel's init
    pending = b""
    while True:
        ready, _, _ = select.select([0, *waiting], [], [])
        for fd in ready:
            if fd != 0:
                pid = waiting.pop(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                say({"event": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})
                continue
            chunk = os.read(0, 65536)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                try:
                    request = json.loads(line)
                    if request.get("op") != "fork":
                        raise ValueError(f"unknown op {request.get('op')!r}")
                    answer = _fork(request)
                except Exception as err:  # noqa: BLE001 - a bad request gets an answer, the zygote lives on
                    answer = {"event": "error", "error": f"{type(err).__name__}: {err}"}
                if answer["event"] == "forked":
                    waiting[os.pidfd_open(answer["pid"])] = answer["pid"]
                say(answer)


if __name__ == "__main__":
    serve()
