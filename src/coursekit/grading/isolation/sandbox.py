"""The bubblewrap sandbox every submission's kernel runs in (stdlib only: the runner imports it).

``kernel_argv(...)`` is the command line of a sandboxed ipykernel: ``bwrap`` with new user, PID, network,
IPC, UTS and cgroup namespaces (``--unshare-all``), ``--die-with-parent``, ``--new-session`` (no terminal
injection), all capabilities dropped, and a file system built from nothing:

* read-only: ``/usr``, ``/etc``, ``/bin``, ``/sbin``, ``/lib*`` (as on the host: a directory or a symlink),
  the course's Python environment (``sys.prefix``), the interpreter it links to (``sys.base_prefix`` and
  the folder of the real ``python``) and the ``coursekit`` package folder itself (editable installs);
* writable: ``/tmp`` (a tmpfs of ``disk_mb``; the kernel's work folder is ``/tmp/work``), ``/dev/shm``
  (a tmpfs of ``disk_mb``) and the folder holding the kernel's ZMQ sockets and connection file (bound at
  the same path: ``transport="ipc"``);
* a new ``/proc`` (the sandbox's own processes only; its ``/proc/sys`` read-only) and a minimal ``/dev``;
  everything else, including ``/`` and ``/dev``, read-only.

The sandbox's user is the grader's own user outside it, except that a grader running as root starts
``bwrap`` as the unprivileged ``nobody`` (``setpriv``; ``unprivileged()``), and hands it the few files
the kernel must write or read (``hand_over``): root's files, ``/proc/sys`` and root-owned ``/proc``
entries are then out of the kernel's reach even through file permissions. Where ``nobody`` cannot pass
through a folder above the environment (``/root``), ``_STAGE`` binds it where nobody can, in a mount
namespace of the sandbox's own. No sandbox runs as the host's root (``RootSandbox``).

``zygote_argv(...)`` is the same sandbox around a warm zygote (``coursekit.grading.isolation.zygote``), which forks
each kernel into namespaces of its own inside it.

It does not see the key, the submissions, the grades, the runner's files, the home folder or the repo,
and it cannot signal or see the runner. The environment is cleared and rebuilt from ``allowed_env``.
``RLIMIT_NPROC`` is set inside the sandbox (it binds a user other than root; root is exempt, so the
runner also counts the sandbox's processes and kills it past the limit).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
                "bubblewrap; Arch: pacman -S bubblewrap), or pass --no-sandbox to grade without it and "
                "accept the risk")
WORKDIR = "/tmp/work"
ZYGOTE_UID = 1000
NOBODY = 65534  # the host user a root grader's sandboxes run as (``unprivileged``)
_KEEP = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "MPLBACKEND", "TQDM_DISABLE",
         "NBGRADER_EXECUTION", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYDEVD_DISABLE_FILE_VALIDATION")
_KEEP_PREFIXES = ("COURSEKIT_", "LC_")
_SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Sets the kernel's process and heap limits (soft and hard: the kernel cannot raise them; 0: none), then
# starts ipykernel as ipykernel_launcher does. The heap limit is the kernel's own, not inherited from the
# runner, whose judge (coursekit.grading.judge) needs torch whatever the kernels may use.
_LAUNCH = ("import resource, sys\n"
           "n, data = int(sys.argv.pop(1)), int(sys.argv.pop(1))\n"
           "for limit, value in ((resource.RLIMIT_NPROC, n), (resource.RLIMIT_DATA, data)):\n"
           "    hard = resource.getrlimit(limit)[1]\n"
           "    value = value if hard == resource.RLIM_INFINITY else min(value, hard)\n"
           "    try:\n        value > 0 and resource.setrlimit(limit, (value, value))\n"
           "    except (ValueError, OSError):\n        pass\n"
           "sys.path[:] = [p for p in sys.path if p]\n"
           "from ipykernel import kernelapp\nkernelapp.launch_new_instance()\n")


def launch_argv(*, nproc: int, memory_mb: int) -> list[str]:
    """The command line that starts an ipykernel with these limits (0: none), talking on ``{connection_file}``."""
    return [sys.executable, "-c", _LAUNCH, str(nproc), str(max(0, memory_mb) * 2**20), "-f", "{connection_file}"]


# Run as root before the sandbox starts, when ``nobody`` cannot pass through a folder above a path the kernel
# must read (the environment under /root, a 0700 home): in a mount namespace of its own (gone when the
# sandbox ends), binds each such path read-only at ``STAGE/<i>``, which nobody can reach, then runs the rest
# of its command line (setpriv ... bwrap --ro-bind STAGE/<i> PATH ...).
_STAGE = ("import ctypes, os, sys\n"
          "libc = ctypes.CDLL(None, use_errno=True)\n"
          "stage, rest = sys.argv[1], sys.argv[2:]\n"
          "cut = rest.index('--')\n"
          "def check(code, what):\n"
          "    if code != 0:\n"
          "        sys.exit(f'coursekit sandbox: {what}: {os.strerror(ctypes.get_errno())}')\n"
          "check(libc.unshare(0x00020000), 'a mount namespace (unshare CLONE_NEWNS)')\n"
          "check(libc.mount(b'none', b'/', None, 16384 | 262144, None), 'making / private')\n"
          "os.makedirs(stage, exist_ok=True)\n"
          "os.chmod(stage, 0o755)\n"
          "for i, path in enumerate(rest[:cut]):\n"
          "    target = os.path.join(stage, str(i)).encode()\n"
          "    os.makedirs(target, exist_ok=True)\n"
          "    check(libc.mount(path.encode(), target, None, 4096 | 16384, None), f'binding {path}')\n"
          "    check(libc.mount(None, target, None, 32 | 4096 | 1 | 16384, None), f'{path} read-only')\n"
          "os.execvp(rest[cut + 1], rest[cut + 1:])\n")


def bwrap() -> str | None:
    return shutil.which("bwrap")


def _passable(path: str) -> bool:
    """Whether ``nobody`` may pass through every folder above ``path`` (and ``path``'s own folder)."""
    folder = os.path.dirname(path.rstrip("/")) or "/"
    while True:
        st = os.stat(folder)
        if not (st.st_mode & 0o001 or (st.st_uid == NOBODY and st.st_mode & 0o100)
                or (st.st_gid == NOBODY and st.st_mode & 0o010)):
            return False
        if folder == "/":
            return True
        folder = os.path.dirname(folder)


def staged_paths(user: str | None = None) -> list[str]:
    """The read-only paths (``readonly_paths``) that the sandbox's host user (``user``, else ``runs_as()``)
    cannot reach: those ``_STAGE`` binds where it can (only ``nobody``, a root grader's user, has any)."""
    if os.geteuid() != 0 or (user or runs_as()) != "nobody":
        return []
    return [p for p in readonly_paths() if not _passable(p)]


def _drop() -> list[str]:
    """The prefix that starts ``bwrap`` as ``nobody`` when the grader is root (else nothing)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv") or "setpriv"
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all"]


_unprivileged: bool | None = None  # decided once per grading (the runner is told: ``--unprivileged``, ``user_of``)
_why_root: str | None = None


def unprivileged() -> bool:
    """Whether sandboxes can run as an unprivileged host user: always, unless the grader is root and
    ``nobody`` cannot start the course's Python in a sandbox, even with the paths it cannot reach bound by
    ``_STAGE``; then ``grade`` refuses to grade (``why_not_unprivileged``)."""
    global _unprivileged, _why_root
    if _unprivileged is None:
        if os.geteuid() != 0:
            _unprivileged = True
        else:
            with tempfile.TemporaryDirectory(prefix="coursekit-probe-") as folder:
                reachable(folder, "nobody")
                probe = [*_walls(None, {}, 1, user="nobody", stage=os.path.join(folder, "env")), "--",
                         sys.executable, "-c", "import coursekit.grading.isolation.zygote"]
                try:
                    done = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
                    _unprivileged = done.returncode == 0
                    lines = done.stderr.decode(errors="replace").strip().splitlines()
                    _why_root = lines[-1] if lines else f"exit code {done.returncode}"
                except (OSError, subprocess.TimeoutExpired) as err:
                    _unprivileged, _why_root = False, str(err)
    return _unprivileged


def why_not_unprivileged() -> str | None:
    """Why ``nobody`` cannot run the course's Python in a sandbox here (the probe's last line), or ``None``."""
    return None if unprivileged() else _why_root


def user_of(unprivileged: bool) -> str:
    """Who the sandboxes run as on the host, given ``unprivileged()``: ``"grader"`` (the grader's own user,
    not root), ``"nobody"`` (a root grader's, where unprivileged) or ``"root"`` (where ``nobody`` cannot run
    the course even through ``_STAGE``: then ``grade`` refuses and ``_walls`` raises ``RootSandbox``)."""
    if os.geteuid() != 0:
        return "grader"
    return "nobody" if unprivileged else "root"


def runs_as() -> str:
    """Who the sandboxes run as on the host (``user_of``), decided here by ``unprivileged()``."""
    return user_of(unprivileged())


def hand_over(path: str | os.PathLike, user: str | None = None) -> None:
    """Give the sandbox's host user (``user``, else ``runs_as()``) ``path``: a folder it must write in, a
    connection file it must read."""
    if (user or runs_as()) == "nobody":
        os.chown(path, NOBODY, NOBODY)


def reachable(path: str | os.PathLike, user: str | None = None) -> None:
    """Let the sandbox's host user (``user``, else ``runs_as()``) pass through folder ``path`` (to bind what
    is below it), not list it."""
    if (user or runs_as()) == "nobody":
        os.chmod(path, os.stat(path).st_mode | 0o111)


@functools.lru_cache(maxsize=1)
def problem() -> str | None:
    """``None`` when a sandbox can be made here, else one line saying why not and what to do."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux (bubblewrap); this is {sys.platform}: pass --no-sandbox to accept the risk"
    exe = bwrap()
    if exe is None:
        return f"bwrap (bubblewrap) not found: {INSTALL_HINT}"
    probe = [exe, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
             *_system_args(), "--proc", "/proc", "--dev", "/dev", "--", "true"]
    try:
        done = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap cannot run ({err}): {INSTALL_HINT}"
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        return (f"bwrap cannot create a sandbox here ({why[-1] if why else f'exit code {done.returncode}'}; "
                f"user namespaces disabled?): enable them, {INSTALL_HINT}")
    return None


def _system_args() -> list[str]:
    args = []
    for path in _SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


@functools.lru_cache(maxsize=1)
def _private_etc() -> tuple[str, ...]:
    """What a sandbox that runs as root must not read although root could: the entries of ``/etc`` that
    other users cannot read (``/etc/shadow``, private keys, ...), hidden behind an empty file or folder."""
    args: list[str] = []
    for folder, folders, names in os.walk("/etc"):
        for name in list(folders):
            path = os.path.join(folder, name)
            if not os.path.islink(path) and not os.stat(path).st_mode & 0o005 == 0o005:
                args += ["--size", "4096", "--tmpfs", path, "--remount-ro", path]
                folders.remove(name)  # all of it is hidden
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.islink(path) and os.path.isfile(path) and not os.stat(path).st_mode & 0o004:
                args += ["--ro-bind", "/dev/null", path]
    return tuple(args)


def allowed_env(env: dict[str, str]) -> dict[str, str]:
    """The variables a sandboxed kernel gets: a fixed list (no paths of the grader, no secrets)."""
    kept = {k: v for k, v in env.items() if k in _KEEP or k.startswith(_KEEP_PREFIXES)}
    kept.update(HOME=WORKDIR, TMPDIR="/tmp", MPLCONFIGDIR="/tmp/matplotlib", PYTHONNOUSERSITE="1",
                PYTHONDONTWRITEBYTECODE="1")
    kept["PATH"] = os.pathsep.join([str(Path(sys.prefix) / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return kept


def readonly_paths() -> list[str]:
    """The Python environment, its interpreter and the package: what the kernel must read, nothing more."""
    package = Path(__file__).resolve().parents[2]  # .../coursekit
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(package)]
    keep: list[str] = []
    for p in sorted({os.path.realpath(p) for p in paths if p}, key=len):
        if any(p == k or p.startswith(k.rstrip("/") + "/") for k in keep) or p.startswith(_SYSTEM):
            continue
        if os.path.isdir(p):
            keep.append(p)
    return keep


def _walls_args(sockets: str | None, env: dict[str, str], disk_mb: int, extra: tuple[str, ...] = (),
                sources: dict[str, str] | None = None) -> list[str]:
    exe = bwrap() or "bwrap"
    size = str(max(1, disk_mb) * 2**20)
    args = [exe, "--unshare-all", "--unshare-user", *extra, "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--clearenv", *_system_args(), "--proc", "/proc", "--ro-bind", "/proc/sys",
            "/proc/sys", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm",
            "--size", size, "--tmpfs", "/tmp",  # before any bind under /tmp, or the binds vanish
            "--dir", WORKDIR, "--dir", "/tmp/matplotlib"]
    for path in readonly_paths():
        args += ["--ro-bind", (sources or {}).get(path, path), path]
    if os.geteuid() == 0:  # a root grader's sandbox, as root or as nobody (then a second wall): hide root's files
        args += _private_etc()
    if sockets is not None:
        args += ["--bind", sockets, sockets]
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORKDIR]
    for key, value in sorted(allowed_env(env).items()):
        args += ["--setenv", key, value]
    return args


class RootSandbox(RuntimeError):
    """A sandbox would run as the host's root: refused (``grade`` says why and what to do)."""


def _walls(sockets: str | None, env: dict[str, str], disk_mb: int, extra: tuple[str, ...] = (),
           user: str | None = None, stage: str | None = None) -> list[str]:
    """The ``bwrap`` command line up to the program: namespaces, file system, environment; started as
    ``nobody`` when the sandbox's host user (``user``, else ``runs_as()``) is, through ``_STAGE`` (mount
    points in ``stage``, else ``sockets``' sibling ``env``) where nobody cannot reach a path it must read.
    Never as the host's root: ``RootSandbox``."""
    user = user or runs_as()
    if os.geteuid() == 0 and user != "nobody":
        raise RootSandbox("a sandbox would run as root on the host")
    if user != "nobody":
        return _walls_args(sockets, env, disk_mb, extra)
    staged = staged_paths(user)
    if not staged:
        return [*_drop(), *_walls_args(sockets, env, disk_mb, extra)]
    stage = stage or os.path.join(os.path.dirname(str(sockets).rstrip("/")), "env")
    sources = {path: os.path.join(stage, str(i)) for i, path in enumerate(staged)}
    return [sys.executable, "-I", "-S", "-c", _STAGE, stage, *staged, "--", *_drop(),
            *_walls_args(sockets, env, disk_mb, extra, sources)]


def kernel_argv(sockets: str, env: dict[str, str], *, disk_mb: int = 512, nproc: int = 1024, memory_mb: int = 0,
                user: str | None = None) -> list[str]:
    """The kernelspec argv of a sandboxed ipykernel talking on ipc sockets in ``sockets``, run as ``user``
    on the host (``user_of``; ``None``: ``runs_as()``), its heap limited to ``memory_mb`` (0: no limit)."""
    # --disable-userns: no nested user namespace, so no tmpfs or mount of the kernel's own outside the caps
    return [*_walls(sockets, env, disk_mb, ("--disable-userns",), user=user), "--",
            *launch_argv(nproc=nproc, memory_mb=memory_mb)]


def zygote_argv(sockets: str, env: dict[str, str]) -> list[str]:
    """The command line of a zygote (``coursekit.grading.isolation.zygote``) in this sandbox; the modules it
    preloads come on its stdin (on the command line, every kernel could read them in ``/proc``).

    ``sockets`` holds one subfolder per kernel. Inside, the sandbox's user is ``ZYGOTE_UID`` (mapped to the
    sandbox's host user): a kernel's nested user namespace maps that user, not the sandbox's root, which
    only a process holding ``CAP_SETFCAP`` could map. Its ``/tmp`` and ``/dev/shm`` are the zygote's; each
    kernel mounts fresh ones of ``disk_mb`` (``zygote.py``), so these stay small."""
    ids = ("--uid", str(ZYGOTE_UID), "--gid", str(ZYGOTE_UID))
    return [*_walls(sockets, env, 16, ids), "--", sys.executable, "-c",
            "from coursekit.grading.isolation.zygote import serve; serve()"]
