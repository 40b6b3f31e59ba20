"""Build the book: execute every chapter once, several at a time, then let Jupyter Book render the pages.

Jupyter Book 1 executes notebooks one after another, so on a machine with N cores N − 1 of them idle.
This script first executes the chapters of ``_toc.yml`` into a fresh jupyter-cache with its parallel
executor (one kernel per core; ``scripts/book.sh`` gives each kernel one thread, so the numbers the
text quotes repeat), then runs ``jupyter-book build`` with ``execute_notebooks: cache`` pointed at that
cache, so the build renders the executed notebooks without running anything again.

    python scripts/build_book.py [--path-output DIR] [--executed DIR] [JUPYTER-BOOK OPTIONS...]   (e.g. -W -n --keep-going)

With ``--executed DIR`` nothing is executed: the chapters come from DIR as something else executed them
(the test command's nbval run writes them there, ``$COURSEKIT_EXECUTED``), each put in the cache as the
executed copy of its chapter, so a test run executes each chapter once.

The cache is made anew on every build (package code may have changed while the notebooks did not), in
``DIR/_build/.jupyter_cache`` (``.jupyter_cache-quick`` under ``COURSEKIT_QUICK=1``: quick and full
outputs never mix). A chapter that fails is reported with its traceback and the build stops (exit 1)
before any page is rendered.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def chapters(toc: Path) -> list[Path]:
    """The notebooks that ``_toc.yml`` lists, in its order."""
    spec = yaml.safe_load(toc.read_text())
    files = [spec["root"]] + [c["file"] for part in spec.get("parts", []) for c in part["chapters"]]
    return [ROOT / "book" / f"{name}.ipynb" for name in files if (ROOT / "book" / f"{name}.ipynb").is_file()]


def quiet_kernel(folder: Path) -> None:
    """Put a ``python3`` kernelspec first on ``$JUPYTER_PATH``: this interpreter's ipykernel, logging only errors.

    ipykernel 7 warns at every start that a kernel talking TCP on localhost is unencrypted; the build's
    kernels live and die on this machine, so the book's log would hold one such line per chapter and
    nothing to act on. Errors of a kernel (a crash, a failed start) still show.
    """
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--IPKernelApp.log_level=ERROR"],
        "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": True}}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(folder), *filter(None, [os.environ.get("JUPYTER_PATH")])])


def execute(notebooks: list[Path], cache_dir: Path, timeout: int) -> int:
    """Execute ``notebooks`` into a fresh cache at ``cache_dir``, one process per core; return the failures."""
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    quiet_kernel(cache_dir.parent / "jupyter")
    shutil.rmtree(cache_dir, ignore_errors=True)
    cache = get_cache(cache_dir)
    for path in notebooks:
        cache.add_nb_to_project(str(path))
    logger = logging.getLogger("build_book")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    start = time.perf_counter()
    result = load_executor("local-parallel", cache, logger=logger).run_and_cache(timeout=timeout,
                                                                                 allow_errors=False)
    print(f"[book] executed {len(result.succeeded)} chapter(s) in {time.perf_counter() - start:.0f} s "
          f"on {os.cpu_count()} core(s)", file=sys.stderr)
    failed = result.excepted + result.errored
    for uri in failed:
        record = cache.get_project_record(uri)
        print(f"[book] {Path(uri).relative_to(ROOT)} failed:\n{record.traceback or '(no traceback)'}", file=sys.stderr)
    return len(failed)


def cache_executed(notebooks: list[Path], executed: Path, cache_dir: Path) -> int:
    """Put each chapter's executed copy from ``executed`` (same path under ``book/``) into a fresh cache at
    ``cache_dir``; return how many chapters have none there, or an error output (each is reported)."""
    import nbformat
    from jupyter_cache import get_cache

    shutil.rmtree(cache_dir, ignore_errors=True)
    cache = get_cache(cache_dir)
    missing = 0
    for path in notebooks:
        copy = executed / path.relative_to(ROOT / "book")
        if not copy.is_file():
            print(f"[book] {path.relative_to(ROOT)}: no executed copy in {executed}", file=sys.stderr)
            missing += 1
            continue
        errors = [o for c in nbformat.read(copy, as_version=4).cells for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        if errors:
            print(f"[book] {path.relative_to(ROOT)} failed when executed: {errors[0]['ename']}: {errors[0]['evalue']}",
                  file=sys.stderr)
            missing += 1
            continue
        cache.cache_notebook_file(str(copy), uri=str(path), check_validity=False, overwrite=True)
    print(f"[book] {len(notebooks) - missing} executed chapter(s) taken from {executed}", file=sys.stderr)
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path-output", default=str(ROOT), help="where _build/ goes (default: the repository)")
    parser.add_argument("--executed", type=Path, help="render the chapters as executed there (nothing is executed)")
    args, jupyter_book_options = parser.parse_known_args()
    out = Path(args.path_output).resolve()
    quick = os.environ.get("COURSEKIT_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}
    cache_dir = out / "_build" / (".jupyter_cache-quick" if quick else ".jupyter_cache")

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    notebooks = chapters(ROOT / "_toc.yml")
    if args.executed is not None:
        if cache_executed(notebooks, args.executed.resolve(), cache_dir):
            return 1
    elif execute(notebooks, cache_dir, int(config["execute"]["timeout"])):
        return 1
    config["execute"].update(execute_notebooks="cache", cache=str(cache_dir))
    derived = out / "_build" / "_config.yml"
    derived.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    jb = shutil.which("jupyter-book", path=os.path.dirname(sys.executable)) or "jupyter-book"
    return subprocess.call([jb, "build", str(ROOT / "book"), "--toc", str(ROOT / "_toc.yml"),
                            "--config", str(derived), "--path-output", str(out), *jupyter_book_options])


if __name__ == "__main__":
    sys.exit(main())
