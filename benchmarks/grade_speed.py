"""Time ``coursekit grade`` on a class of 20 submissions with 1 and 2 workers; print a table.

    python benchmarks/grade_speed.py                      # 20 copies of solutions/<first>.ipynb
    python benchmarks/grade_speed.py --exercise 05_sparse_autoencoder --students 20 --workers 1 2 4
    python benchmarks/grade_speed.py --toy                # the tests' toy exercise (no torch)

Every submission is a copy of the key's solution notebook, so every row must score full marks (checked).
Kernels run in quick mode (the grader sets COURSEKIT_QUICK=1), one thread each.
"""

from __future__ import annotations

import argparse
import os
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
    from coursekit.grading.grade import Settings, grade_folder

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
            began = time.perf_counter()
            results = grade_folder(subs, key, settings=Settings(), workers=workers, progress=True)
            seconds = time.perf_counter() - began
            full = sum(r.total == r.max > 0 and r.status == "ok" for r in results)
            rows.append((workers, seconds, seconds / len(results), f"{full}/{len(results)}"))
    print()
    print("| workers | wall time (s) | per notebook (s) | full marks |")
    print("|--------:|--------------:|-----------------:|-----------:|")
    for workers, seconds, each, full in rows:
        print(f"| {workers:7d} | {seconds:13.1f} | {each:16.2f} | {full:>10s} |")
    return 0 if all(r[3].split("/")[0] == r[3].split("/")[1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
