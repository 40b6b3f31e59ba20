"""The ``coursekit`` command (also ``python -m coursekit``): ``info``, ``train``, ``bench``, ``release`` and ``grade``.

Failures are reported on one line (``coursekit: error: ...``): a usage error (a bad option, an option
the recipe does not take, a missing folder; ``coursekit.errors.UsageError``) exits with 2, any other
failure (a CUDA out-of-memory, a broken checkpoint, a bug) with 1. ``--debug`` shows the traceback.
Building the parser imports no torch: ``--help``, ``grade`` and ``release`` answer at once, and only
the commands that compute (``train``, ``info``; ``bench`` in its child processes) load it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from contextlib import contextmanager

from coursekit.errors import UsageError


@contextmanager
def _input_errors_are_usage():
    """A folder, key or notebook that is missing or invalid is the user's request going wrong: exit 2."""
    try:
        yield
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        if isinstance(err, UsageError):
            raise
        raise UsageError(str(err)) from err


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _info(args: argparse.Namespace) -> int:
    from coursekit.checkpoint import library_versions
    from coursekit.device import get_device, quick_mode

    info = {"device": str(get_device()), "quick_mode": quick_mode(), **library_versions()}
    print(json.dumps(info) if args.json else "\n".join(f"{k:12s} {v}" for k, v in info.items()))
    return 0


def _train(args: argparse.Namespace) -> int:
    from coursekit.recipes import OPTIONS, get_recipe

    recipe = get_recipe(args.name)
    options = {key: getattr(args, key) for key in OPTIONS}
    # Resolve everything that can be wrong with the request before torch is imported.
    recipe.configure(data=args.data, data_root=args.data_root, seed=args.seed, quick=args.quick or None,
                     **options)

    from coursekit import distributed
    from coursekit.device import get_device

    try:
        device = get_device(args.device)  # the one place the device is picked; a missing one fails here
        # Under torchrun with WORLD_SIZE > 1: join the process group (nccl on cuda:LOCAL_RANK, gloo on the CPU).
        device = distributed.init(device)
        return _train_on(args, recipe, options, device)
    except UsageError:
        if distributed.is_main():
            raise
        return 2  # every rank refuses the same request: only rank 0 says why
    finally:
        distributed.shutdown()


def _train_on(args: argparse.Namespace, recipe, options: dict, device) -> int:
    """Train and report; in a data-parallel run only rank 0 prints and writes files."""
    from coursekit import distributed
    from coursekit.checkpoint import save_checkpoint
    from coursekit.device import seed_everything
    from coursekit.recipes import train_recipe

    seed_everything(args.seed)  # the same seed on every rank: the same initial model
    result = train_recipe(args.name, seed=args.seed, device=device, quick=args.quick or None,
                          progress=not args.no_progress, data=args.data, data_root=args.data_root, **options)
    if not distributed.is_main():
        return 0
    if args.out:
        command = "coursekit " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        path = save_checkpoint(args.out, result.model, name=args.name, builder=recipe.builder,
                               config=result.config, seed=args.seed, metrics=result.metrics, command=command,
                               history=result.history)
        print(f"saved {path} and {path.with_suffix('.json')}", file=sys.stderr)
    if args.json:
        print(json.dumps({"model": args.name, **result.metrics}))
    else:
        for key, value in result.metrics.items():
            print(f"{key:20s} {value:.6g}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from coursekit.bench import get_comparison, run_comparison, write_record

    for name in args.names:  # refuse an unknown name before any run starts
        get_comparison(name)
    for name in args.names:
        record = run_comparison(name, args.seeds, quick=args.quick, device=args.device, jobs=args.jobs,
                                progress=not args.no_progress)
        path = write_record(record, args.out)
        print(f"wrote {path}", file=sys.stderr)
        for arm in record["arms"]:
            s = arm["summary"][record["metric"]]
            print(f"{name:14s} {arm['label']:16s} {record['metric']} {s['mean']:.4f} ± {s['std']:.4f} "
                  f"(n={s['n']}, min {s['min']:.4f}, max {s['max']:.4f})")
    return 0


def _release(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coursekit.grading.release import release

    with _input_errors_are_usage():
        report = release(args.solutions, args.out, check=args.check)
    if args.check:
        if report.drifted:
            for name in report.written:
                if (Path(args.out) / name).is_file():
                    print(f"{args.out}/{name} differs from what release would write from {args.solutions}/{name}")
                else:
                    print(f"{args.out}/{name} is missing (release writes it from {args.solutions}/{name})")
            for name in report.removed:
                print(f"{args.out}/{name} has no solution in {args.solutions}/")
            print(f"coursekit release: {len(report.drifted)} exercise(s) out of date: run `coursekit release`",
                  file=sys.stderr)
            return 1
        print(f"{len(report.unchanged)} exercise(s) up to date")
        return 0
    for name in report.written:
        print(f"wrote {args.out}/{name}")
    for name in report.removed:
        print(f"removed {args.out}/{name} (its solution is gone)")
    print(f"{len(report.written)} written, {len(report.unchanged)} unchanged, {len(report.removed)} removed",
          file=sys.stderr)
    return 0


def _grade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coursekit.grading.isolation import sandbox
    from coursekit.grading.grade import SandboxUnavailable, Settings, grade_folder, load_key, require_sandbox
    from coursekit.grading.report import number, write_reports

    submissions, out = Path(args.submissions), Path(args.out)
    if not submissions.is_dir():
        raise UsageError(f"submissions folder not found: {submissions}")
    settings = Settings(cell_timeout=args.cell_timeout, timeout=args.timeout, memory_mb=args.memory_mb,
                        sandbox=not args.no_sandbox, disk_mb=args.disk_mb, max_processes=args.max_processes,
                        max_files=args.max_files)
    try:
        require_sandbox(settings)
    except SandboxUnavailable as err:
        raise UsageError(f"no sandbox: {err}") from err
    if not settings.sandbox:
        print("coursekit grade: warning: --no-sandbox: student code runs unconfined as your user; it can read "
              "the key and forge its results. Grade only work you trust this way.", file=sys.stderr)
    with _input_errors_are_usage():
        key = load_key(args.key)  # read once: the grading and the reports see the same key
        if settings.sandbox and sandbox.runs_as() == "root":
            raise UsageError("grading as root, the sandboxes run as the user nobody, who cannot start the "
                             f"course's Python here ({sandbox.why_not_unprivileged()}); a kernel never runs as "
                             "root: grade as an ordinary user, or install the course where nobody can read it")
        results = grade_folder(submissions, key, settings=settings, exercise=args.exercise,
                               workers=args.workers, progress=not args.no_progress, exclude=out)
    written = write_reports(out, results, key, settings)
    width = max([len(r.student) for r in results] + [7])
    for r in results:
        print(f"{r.student:{width}s}  {r.exercise:28s} {number(r.total):>6s} / {number(r.max):<4s} {r.status}")
    problems = sum(r.status != "ok" for r in results)
    print(f"graded {len(results)} notebook(s), {problems} with a status other than ok; wrote {written[0]}, "
          f"{written[1]} and {len(written) - 2} feedback file(s) in {out / 'feedback'}", file=sys.stderr)
    return 0


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


GRADE_HELP = """\
Grade a folder of submitted notebooks against the key (the instructor's solutions/) and write
grades.csv, grades.json and one feedback file per student into --out.

submissions (student id = the folder's or the file's name):
  SUBMISSIONS/<student>/<exercise>.ipynb     one folder per student, any number of exercises
  SUBMISSIONS/<student>__<exercise>.ipynb    one file per student and exercise
  SUBMISSIONS/<student>.ipynb                one file per student (use --exercise, or a one-exercise key)
  Files that are not .ipynb get a row saying so; names starting with '.' are skipped.

which exercise: --exercise if given, else the file name (05_sparse_autoencoder, a copy such as
  '05_sparse_autoencoder (1)', or its number: 05, ex5), else the exercise recorded in the notebook by
  `coursekit release`, else the key's only exercise.

how: each notebook runs in its own fresh kernel, in a bubblewrap sandbox (forked from a warm kernel per
  worker that has made the key's imports and runs no student code), in quick mode (COURSEKIT_QUICK=1,
  NBGRADER_EXECUTION=autograde, COURSEKIT_DEVICE=cpu unless set), with the limits below. The locked
  cells and the tests (visible and hidden) are the key's, never the student's copies; the student's
  solution cells are matched by their nbgrader grade_id, so deleted, reordered or edited cells cannot
  change the tests. A test cell scores its points when it runs without an error (or the
  fraction it awards with coursekit.grading.partial_credit). Errors, endless loops, kernel crashes,
  exits, huge allocations and broken files cost only that student's points.

sandbox (bubblewrap, `bwrap`; needs Linux with user namespaces): the kernel sees a read-only system and
  Python environment and an empty, size-limited work folder. It cannot see the key, the submissions,
  other students' work, the grades, the grader's files, your home folder or the repository; it has no
  network and cannot see or signal the grader; it is killed past --max-processes or --max-files.
  Scores come only from what the grader observes over the Jupyter protocol. It does NOT stop code that
  runs inside the kernel from tampering with that kernel (student code and the tests share it, as in
  nbgrader): the key's tests compare with functions bound before any student cell runs, but a student
  who patches the interpreter itself can still fool a test. Without bwrap, grading stops with one
  line: install bubblewrap, or pass --no-sandbox to grade unconfined (recorded as "sandbox": false in
  grades.json).

outputs in --out:
  grades.csv     student,exercise,task1,...,taskN,total,max,status,file (one row per student and
                 exercise; status is 'ok' or the problems found, e.g. 'not attempted: task2_kl')
  grades.json    the same rows, with every test's result and message, points per task, the limits
  feedback/<student>.md  each task's points and each failing test's message (hidden tests: only that
                 one failed)
  Files are written atomically; grading the same folder again gives the same grades.
"""


def build_parser() -> argparse.ArgumentParser:
    from coursekit import __version__
    from coursekit.recipes import RECIPES

    parser = _Parser(prog="coursekit", description=(
        "Encoder-Decoder Models course toolkit: train the course's models, release exercises, "
        "grade submissions."))
    parser.add_argument("--version", action="version", version=f"coursekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("info", help="show the device, quick mode and library versions")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_info)

    names = "\n".join(f"  {r.name:16s} {r.help}" for r in RECIPES.values())
    p = sub.add_parser(
        "train", help="train one of the course's models on its default data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Train a model and report its test metrics.\n\nmodels:\n{names}",
        epilog="Each model takes the options its recipe lists (--epochs, --lr, --batch-size; --code-size for "
               "autoencoders; --loss, --labels, --noise, --level, --upsample where listed above); another is refused. Progress goes to "
               "standard error; with --json the last line of standard output is one JSON object of final metrics. --out also writes a JSON sidecar "
               "with the exact command, seed, library versions and metrics. Exit status: 0 done, 1 the run "
               "failed, 2 a usage error.")
    p.add_argument("name", choices=list(RECIPES), metavar="NAME", help="model to train (listed above)")
    p.add_argument("--quick", action="store_true", help="tiny data and one or two epochs (seconds)")
    p.add_argument("--epochs", type=_positive(int), help="training epochs (default: the recipe's)")
    p.add_argument("--code-size", type=_positive(int), help="code (bottleneck) size, autoencoders only")
    p.add_argument("--batch-size", type=_positive(int), help="mini-batch size")
    p.add_argument("--lr", type=_positive(float), help="learning rate")
    p.add_argument("--loss", help="training loss: mse or bce for dense-ae (default mse); ce or ce+dice for the "
                                  "segmentation models (default ce)")
    p.add_argument("--labels", type=_positive(int), help="labelled digits the classifier is fine-tuned on, "
                   "stacked-ae and scratch-classifier only (default: all)")
    p.add_argument("--noise", help="denoising-ae's corruption: gaussian, masking (default) or salt_and_pepper")
    p.add_argument("--level", type=_non_negative, help="denoising-ae's corruption level: a probability in [0, 1], or σ for gaussian")
    p.add_argument("--upsample", help="conv-ae's decoder: transposed (default) or resize (then a convolution)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: $COURSEKIT_DEVICE or auto)")
    p.add_argument("--data", help="dataset: digits (default) / mnist / fashion for Part I, with --data-root for "
                                  "the last two; shapes (default) for Part II")
    p.add_argument("--data-root", help="folder holding a real dataset (nothing is downloaded)")
    p.add_argument("--out", metavar="CHECKPOINT", help="save weights here (+ a .json sidecar)")
    p.add_argument("--json", action="store_true", help="print final metrics as one JSON line")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_train)

    from coursekit.bench import COMPARISONS, MIN_SEEDS

    comparisons = "\n".join(f"  {c.name:20s} by {c.metric}: {' | '.join(a.label for a in c.arms)}"
                             for c in COMPARISONS.values())
    p = sub.add_parser(
        "bench", help="train the arms of a comparison over several seeds and record mean ± std",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train every arm of each named comparison once per seed, each run the exact `coursekit "
                    "train ... --json` command a reader could type, and write OUT/NAME.json: the commands, "
                    "every seed's metrics and wall time, mean and sample std per metric, versions, device."
                    f"\n\ncomparisons (the deciding metric: the arms):\n{comparisons}",
        epilog=f"Chapters claim an ordering only where the 95% t-interval of the arms' paired differences (seed by "
               f"seed) excludes 0; a bench on a busy machine warns that its wall times will not compare; a record "
               f"they rely on has at least {MIN_SEEDS} seeds. Example: coursekit bench segmentation --seeds 0 1 2 "
               "3 4 --jobs 2. Exit status: 0 done, 1 a run failed, 2 a usage error.")
    p.add_argument("names", nargs="+", choices=list(COMPARISONS), metavar="NAME", help="comparisons (listed above)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(MIN_SEEDS)), metavar="S",
                   help=f"seeds, one run of every arm each (default 0 … {MIN_SEEDS - 1})")
    p.add_argument("--jobs", type=_positive(int), default=1, metavar="N",
                   help="runs at once, each with cores/N threads (default 1)")
    p.add_argument("--quick", action="store_true", help="quick runs (seconds; for checking, not for chapters)")
    p.add_argument("--device", help="passed to every run (default: each run's own choice)")
    p.add_argument("--out", default=None, metavar="DIR", help="where to write NAME.json (default: results/)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "release", help="write the student notebooks (exercises/) from the solutions",
        description="Write exercises/NAME.ipynb for every solutions/NAME.ipynb: solution code replaced by "
                    "a stub raising NotImplementedError, hidden tests removed, outputs cleared, nbgrader "
                    "checksums added. Exercises whose solution is gone are removed.",
        epilog="Exit status: 0 done (or, with --check, up to date); 1 with --check when exercises/ is out "
               "of date; 2 on an error such as an invalid solution notebook.")
    p.add_argument("--solutions", default="solutions", metavar="DIR", help="the source notebooks (default: solutions)")
    p.add_argument("--out", default="exercises", metavar="DIR", help="where to write (default: exercises)")
    p.add_argument("--check", action="store_true", help="write nothing; fail if --out differs from a fresh release")
    p.set_defaults(func=_release)

    p = sub.add_parser("grade", help="grade a folder of submitted notebooks", description=GRADE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Exit status: 0 when every submission was graded (whatever its score); 2 on "
                              "a missing folder, an invalid key or a bad option. Example: coursekit grade "
                              "submissions/ --out grades/ --workers 2")
    p.add_argument("submissions", metavar="SUBMISSIONS", help="folder of submissions (layouts above)")
    p.add_argument("--out", default="grades", metavar="DIR", help="where to write the grades (default: grades)")
    p.add_argument("--key", default="solutions", metavar="DIR",
                   help="the instructor's notebooks with solutions and hidden tests (default: solutions)")
    p.add_argument("--exercise", metavar="NAME", help="grade every notebook as this exercise (name or number)")
    p.add_argument("--workers", type=_positive(int), default=1, metavar="N",
                   help="notebooks graded in parallel (default 1; at most one per CPU core is sensible)")
    p.add_argument("--cell-timeout", type=_positive(float), default=60, metavar="S",
                   help="seconds a cell may run before it is interrupted (default 60)")
    p.add_argument("--timeout", type=_positive(float), default=600, metavar="S",
                   help="seconds a whole notebook may run, kernel start included (default 600)")
    p.add_argument("--memory-mb", type=_positive(int), default=4096, metavar="MB",
                   help="memory a kernel may allocate, in MB (default 4096; torch alone takes about 1000)")
    p.add_argument("--disk-mb", type=_positive(int), default=512, metavar="MB",
                   help="size of the sandbox's work folder (/tmp) and of /dev/shm, each (default 512)")
    p.add_argument("--max-processes", type=_positive(int), default=128, metavar="N",
                   help="processes one sandbox may hold before it is killed (default 128)")
    p.add_argument("--max-files", type=_positive(int), default=10000, metavar="N",
                   help="files one sandbox may create before it is killed (default 10000)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run kernels without bubblewrap, as nbgrader does: a student who reads the grader's "
                        "source can then read the key and forge results (recorded in grades.json)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("coursekit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for a user; --debug for the traceback
        if args.debug:
            raise
        from coursekit.errors import CoursekitError

        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        kind = "" if isinstance(err, CoursekitError) else f" ({type(err).__name__})"
        print(f"coursekit: error{kind}: {detail}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
