"""Time ``coursekit grade`` on a class of 20 submissions, sandboxed and not, with 1 and 2 workers; print a table.

    python benchmarks/grade_speed.py                      # 20 copies of solutions/<first>.ipynb
    python benchmarks/grade_speed.py --exercise 05_sparse_autoencoder --students 20 --workers 1 2 4
    python benchmarks/grade_speed.py --toy                # the tests' toy exercise (no torch)

Every submission is a copy of the key's solution notebook, so every row must score full marks (checked).
Kernels run in quick mode (the grader sets COURSEKIT_QUICK=1), one thread each. Each configuration grades
the same 20 submissions in the same run: wall time, and the machine's busy CPU time while it ran
(so keep the machine otherwise idle). Sandboxed rows are left out, saying why, where bubblewrap cannot
make a sandbox. (nbgrader's row is not measured yet.)
"""

from __future__ import annotations

import argparse
import os
import resource
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--key", default=str(ROOT / "solutions"), help="the key folder (default: solutions/)")
    parser.add_argument("--exercise", help="which exercise of the key (default: the first)")
    parser.add_argument("--toy", action="store_true", help="grade the tests' toy exercise instead")
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    from coursekit.grading import sandbox
    from coursekit.grading.grade import Settings, grade_folder

    modes = [("sandboxed", True), ("unsandboxed", False)]
    if sandbox.problem():
        print(f"sandboxed rows skipped: {sandbox.problem()}", flush=True)
        modes = modes[1:]

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
              f"{platform.python_version()}, {platform.machine()}", flush=True)
        rows = []
        for workers in args.workers:
            for mode, sandboxed in modes:
                cpu = _cpu()
                began = time.perf_counter()
                results = grade_folder(subs, key, settings=Settings(sandbox=sandboxed), workers=workers,
                                       progress=True)
                seconds = time.perf_counter() - began
                cpu = _cpu() - cpu
                full = sum(r.total == r.max > 0 and r.status == "ok" for r in results)
                rows.append((mode, workers, seconds, cpu, cpu / len(results), f"{full}/{len(results)}"))
    print()
    print("| grader | workers | wall time (s) | CPU time (s) | CPU per notebook (s) | full marks |")
    print("|--------|--------:|--------------:|-------------:|---------------------:|-----------:|")
    for mode, workers, seconds, cpu, each, full in rows:
        print(f"| {mode:11s} | {workers:7d} | {seconds:13.1f} | {cpu:12.1f} | {each:20.2f} | {full:>10s} |")
    return 0 if all(r[-1].split("/")[0] == r[-1].split("/")[1] for r in rows) else 1


def _cpu() -> float:
    """CPU seconds used so far: the whole machine's busy time from /proc/stat where there is one (a
    sandboxed kernel is reaped inside its sandbox, so this process's children's rusage misses it; keep
    the machine otherwise idle), else this process's and its waited-for children's."""
    try:
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total

if __name__ == "__main__":
    sys.exit(main())
