"""Time ``coursekit grade`` on a class of 20 submissions, sandboxed and not, with 1 and 2 workers; print a table.

    python benchmarks/grade_speed.py                      # 20 copies of solutions/<first>.ipynb
    python benchmarks/grade_speed.py --exercise 05_sparse_autoencoder --students 20 --workers 1 2 4
    python benchmarks/grade_speed.py --toy                # the tests' toy exercise (no torch)

Every submission is a copy of the key's solution notebook, so every row must score full marks (checked).
Kernels run in quick mode (COURSEKIT_QUICK=1), one thread each. Each configuration grades the same
submissions on the same machine in the same run: coursekit sandboxed (``sandboxed``: each kernel forked
from a warm zygote per worker, the default; ``sandboxed-fresh``: each kernel started from nothing in its
own ``bwrap``, ``Settings(warm=False)``) and unsandboxed (``--no-sandbox``: fresh kernels, as nbgrader's),
and, when nbgrader is installed, ``nbgrader autograde`` of the same notebooks (a course made in a temporary
folder, its kernelspec pinned to this interpreter; only autograde is timed, its own process start
included). ``--modes`` picks the coursekit rows.

CPU time is everything the configuration's processes used, the grader, its runners and every kernel
(a sandboxed kernel is reaped inside its sandbox, so the grader's rusage misses it): measured with a
cpuacct cgroup of its own where one can be made (root on cgroup v1: exact, other load does not count),
else the machine's busy time from /proc/stat (user, nice, system, irq, softirq; keep the machine idle).
Sandboxed rows are left out, saying why, where bubblewrap cannot make a sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {"sandboxed": {"sandbox": True}, "sandboxed-fresh": {"sandbox": True, "warm": False},
         "unsandboxed": {"sandbox": False}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--key", default=str(ROOT / "solutions"), help="the key folder (default: solutions/)")
    parser.add_argument("--exercise", help="which exercise of the key (default: the first)")
    parser.add_argument("--toy", action="store_true", help="grade the tests' toy exercise instead")
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                        help="which coursekit rows (default: all)")
    parser.add_argument("--no-nbgrader", action="store_true", help="leave nbgrader's row out")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    from coursekit.grading.isolation import sandbox
    from coursekit.grading.grade import Settings, grade_folder

    modes = [(mode, MODES[mode]) for mode in args.modes]
    if sandbox.problem():
        print(f"sandboxed rows skipped: {sandbox.problem()}", flush=True)
        modes = [(mode, options) for mode, options in modes if not options["sandbox"]]

    with tempfile.TemporaryDirectory(prefix="grade-speed-") as tmp:
        tmp = Path(tmp)
        if args.toy:
            sys.path.insert(0, str(ROOT / "tests"))
            import grading_builders as gb

            key = gb.write_key(tmp / "key")
            source = gb.save(gb.answered(), tmp / "toy.ipynb")
        else:
            key = Path(args.key)
            names = sorted(key.glob("*.ipynb"))
            source = key / f"{args.exercise}.ipynb" if args.exercise else (names[0] if names else None)
            if source is None or not source.is_file():
                parser.error(f"no exercise notebook in {key}")
        subs = tmp / "subs"
        for i in range(args.students):
            (subs / f"student{i:02d}").mkdir(parents=True)
            shutil.copy(source, subs / f"student{i:02d}" / source.name)
        print(f"{args.students} submissions of {source.stem}, {os.cpu_count()} CPU cores, "
              f"{platform.python_version()}, {platform.machine()}, CPU measured by {_Meter.how()}", flush=True)
        rows = []
        for workers in args.workers:
            for mode, options in modes:
                with _Meter() as meter:
                    results = grade_folder(subs, key, settings=Settings(**options), workers=workers, progress=True)
                full = sum(r.total == r.max > 0 and r.status == "ok" for r in results)
                rows.append((mode, workers, meter.wall, meter.cpu, meter.cpu / len(results),
                             f"{full}/{len(results)}"))
        if not args.no_nbgrader:
            rows += _nbgrader(tmp / "nbgrader", source, key, args.students)
    print()
    print("| grader | workers | wall time (s) | CPU time (s) | CPU per notebook (s) | full marks |")
    print("|--------|--------:|--------------:|-------------:|---------------------:|-----------:|")
    for mode, workers, seconds, cpu, each, full in rows:
        print(f"| {mode:16s} | {workers!s:>7} | {seconds:13.1f} | {cpu:12.1f} | {each:20.2f} | {full:>10s} |")
    return 0 if all(r[-1].split("/")[0] == r[-1].split("/")[1] for r in rows) else 1


def _nbgrader(base: Path, source: Path, key: Path, students: int) -> list[tuple]:
    """``nbgrader autograde`` of ``students`` copies of ``source`` (one kernel per notebook, as nbgrader
    does), in quick mode on the CPU; one row, or none (saying why) when nbgrader is not installed."""
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        print("nbgrader row skipped: nbgrader is not installed (pip install nbgrader)", flush=True)
        return []
    course, jupyter, assignment = base / "course", base / "jupyter", "ex"
    spec = jupyter / "data" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (coursekit)", "language": "python"}))
    env = {**os.environ, "JUPYTER_PATH": str(jupyter / "data"), "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
           "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"), "COURSEKIT_QUICK": "1", "COURSEKIT_DEVICE": "cpu",
           "MPLBACKEND": "Agg", "TQDM_DISABLE": "1",
           "PATH": os.pathsep.join([sysconfig.get_path("scripts"), str(Path(sys.executable).parent),
                                    os.environ.get("PATH", "")])}
    (course / "source" / assignment).mkdir(parents=True)
    shutil.copy(source, course / "source" / assignment / source.name)
    (course / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "bench"\n')

    def run(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if proc.returncode:
            raise SystemExit(f"nbgrader {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}")

    run("generate_assignment", assignment)
    for i in range(students):
        target = course / "submitted" / f"student{i:02d}" / assignment
        target.mkdir(parents=True)
        shutil.copy(source, target / source.name)
    print(f"nbgrader autograde of {students} submissions ...", flush=True)
    with _Meter() as meter:
        run("autograde", assignment, "--ExecutePreprocessor.timeout=180")
    from nbgrader.api import Gradebook

    full = 0
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="bench") as book:
        for i in range(students):
            nb = book.find_submission_notebook(source.stem, assignment, f"student{i:02d}")
            full += bool(nb.max_score) and nb.score == nb.max_score
    return [("nbgrader", "1", meter.wall, meter.cpu, meter.cpu / students, f"{full}/{students}")]


class _Meter:
    """Wall and CPU seconds of what runs inside ``with``: this process, everything it starts and everything its
    children (the warm runners' fork server) start meanwhile."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    @classmethod
    def how(cls) -> str:
        return "a cpuacct cgroup" if cls._home() is not None else "/proc/stat (the whole machine)"

    @classmethod
    def _home(cls) -> Path | None:
        """This process's cpuacct cgroup (cgroup v1), when this process may make one inside it."""
        try:
            for line in open("/proc/self/cgroup"):
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "cpuacct" in controllers.split(","):
                    home = cls.ROOT / path.lstrip("/")
                    return home if os.access(home, os.W_OK) and (home / "cgroup.procs").is_file() else None
        except OSError:
            pass
        return None

    def __enter__(self):
        self.group = None
        home = self._home()
        if home is not None:
            try:
                group = home / f"grade-speed-{os.getpid()}-{time.monotonic_ns()}"
                group.mkdir()
                (group / "cgroup.procs").write_text(str(os.getpid()))
                self.group, self.home = group, home
                self._move_children(group)  # the fork server of the warm runners, started by an earlier row
            except OSError:
                pass
        self.cpu0 = self._cpu()
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.began
        self.cpu = self._cpu() - self.cpu0
        if self.group is not None:
            (self.home / "cgroup.procs").write_text(str(os.getpid()))
            self._move_children(self.home)
            try:
                self.group.rmdir()
            except OSError:
                pass
        return False

    @staticmethod
    def _move_children(group: Path) -> None:
        """Move this process's children into ``group``: what they fork from now on is counted there."""
        import psutil

        for child in psutil.Process().children():
            try:
                (group / "cgroup.procs").write_text(str(child.pid))
            except OSError:
                pass  # gone meanwhile

    def _cpu(self) -> float:
        if self.group is not None:
            return int((self.group / "cpuacct.usage").read_text()) / 1e9
        try:
            # user nice system idle iowait irq softirq steal ...: busy is user+nice+system+irq+softirq
            # (guest time is already in user; idle, iowait and steal are not this machine's work)
            fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
            return (sum(fields[:3]) + sum(fields[5:7])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            total = 0.0
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
                usage = resource.getrusage(who)
                total += usage.ru_utime + usage.ru_stime
            return total


if __name__ == "__main__":
    sys.exit(main())
