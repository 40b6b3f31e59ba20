"""Robustness of the chapters' live trainings over seeds and CPU kernel paths: a record and a table.

    python benchmarks/robustness.py                                  # every chapter run, seeds 0-9, every path
    python benchmarks/robustness.py --runs SegNet --seeds 0 1 2 --paths native avx2 --jobs 2
    python benchmarks/robustness.py --table                          # print the table of the record only

Each run is the chapter's ``coursekit train ... --json`` command on one CPU thread, under one of the
paths of ``coursekit.robustness.CPU_PATHS``; every finished run is added to ``results/robustness.json`` at
once, so an interrupted bench resumes where it stopped (runs already recorded are not repeated). The
table gives, per chapter run, min / median / max over every seed and path, how far the worst run is from
the median, and whether that is within the goal (0.05 mIoU; 5% of the median error). Not a test: the
runs take minutes each.
"""

from __future__ import annotations

import argparse
import sys

from coursekit.robustness import CHAPTER_RUNS, CPU_PATHS, load_robustness, record_path, run_robustness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--runs", nargs="+", default=list(CHAPTER_RUNS), choices=list(CHAPTER_RUNS), metavar="RUN",
                        help=f"chapter runs (default: all): {', '.join(CHAPTER_RUNS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)), help="seeds (default 0-9)")
    parser.add_argument("--paths", nargs="+", default=list(CPU_PATHS), choices=list(CPU_PATHS),
                        help="CPU kernel paths (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each (default 2)")
    parser.add_argument("--table", action="store_true", help="only print the table of the existing record")
    args = parser.parse_args(argv)
    if not args.table:
        run_robustness(args.runs, args.seeds, args.paths, jobs=args.jobs,
                       log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{record_path()}\n{load_robustness().table(args.runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
