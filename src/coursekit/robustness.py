"""Robustness of the chapters' trainings: every seed, every CPU kernel path (``benchmarks/robustness.py``).

A chapter that trains a model live and checks what it learned must pass for every reader: on any seed,
and on any CPU, whose SIMD kernels sum in another order than ours. A one-thread run repeats bit for bit
on one machine, but a training that sits on a knife's edge (a plateau it leaves late, say) falls off it
on another CPU. ``run_robustness`` trains each of ``CHAPTER_RUNS`` (the exact ``coursekit train``
command of a chapter's live run) once per seed under each of ``CPU_PATHS``:

* ``native``: oneDNN picks the best kernels for this CPU (AVX-512 on the machines we build on);
* ``avx512_core`` and ``avx2``: oneDNN held to an older instruction set (``ONEDNN_MAX_CPU_ISA``), the
  kernels an older reader's CPU runs;
* ``no-onednn``: oneDNN off (``COURSEKIT_ONEDNN=off``), convolutions on ATen's own CPU kernels.

Two paths that dispatch the same oneDNN kernels for a model compute the same numbers (dense networks
use no oneDNN kernel at all): ``kernels`` reads oneDNN's own log of what it ran (``ONEDNN_VERBOSE``) in
a short quick-mode run, and such a path is run on seed 0 only, to confirm that it repeats the other
path exactly. The record, ``results/robustness.json``, holds every run's metrics; ``load_robustness``
reads it back, and a chapter checks its live run against the record's worst run (``Robustness.floor``).

The goal: the worst run within ``SEGMENTATION_GOAL`` mIoU (or accuracy) of the median, or, for an
error to minimise, within ``ERROR_GOAL`` of the median relatively.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from coursekit.bench import higher_is_better, results_dir, train_once
from coursekit.recipes import OPTIONS

NAME = "robustness"
SEGMENTATION_GOAL = 0.05  # worst mIoU (or accuracy) at most this far below the median
ERROR_GOAL = 0.05  # worst error at most this fraction above the median

CPU_PATHS: dict[str, dict[str, str]] = {
    "native": {},
    "avx512_core": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "no-onednn": {"COURSEKIT_ONEDNN": "off"},
}


@dataclass(frozen=True)
class ChapterRun:
    """A chapter's live training as a ``coursekit train`` command, and the metric its checks read."""

    label: str
    chapter: str
    recipe: str
    metric: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def command(self, seed: int, quick: bool = False) -> list[str]:
        words = ["train", self.recipe, "--seed", str(seed)]
        for key, value in self.options.items():
            words += [OPTIONS[key], str(value)]
        return words + ["--quick"] * quick + ["--json", "--no-progress"]


# The live trainings whose outcome a chapter checks. (Chapter 9 tests the FCN checkpoints on the shapes and
# trains live only on other data; chapter 11's live U-Net runs are its 3-epoch loss comparison.)
CHAPTER_RUNS: dict[str, ChapterRun] = {r.label: r for r in [
    ChapterRun("SegNet", "part2/10_segnet", "segnet", "miou"),
    ChapterRun("U-Net, 3 epochs, CE", "part2/11_unet", "unet", "miou", {"epochs": 3}),
    ChapterRun("U-Net, 3 epochs, CE + Dice", "part2/11_unet", "unet", "miou", {"epochs": 3, "loss": "ce+dice"}),
]}


def kernels(run: ChapterRun, path: str) -> list[str]:
    """The oneDNN kernels (primitive kind and implementation) a quick run of ``run`` executes on ``path``."""
    env = dict(os.environ, **CPU_PATHS[path], ONEDNN_VERBOSE="1", OMP_NUM_THREADS="1")
    env.pop("COURSEKIT_QUICK", None)
    out = subprocess.run([sys.executable, "-m", "coursekit", *run.command(0, quick=True)], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"`coursekit {shlex.join(run.command(0, quick=True))}` on {path} failed: "
                           f"{(out.stderr.strip().splitlines() or ['no output'])[-1]}")
    found = set()
    for line in out.stdout.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and len(fields) > 6 and fields[3] == "exec":
            found.add(f"{fields[5]}:{fields[6]}")
    return sorted(found)


def _key(label: str, path: str, seed: int) -> str:
    return f"{label}|{path}|{seed}"


def record_path(folder: str | os.PathLike | None = None) -> Path:
    return (Path(folder) if folder is not None else results_dir()) / f"{NAME}.json"


def run_robustness(labels: Iterable[str], seeds: Iterable[int], paths: Iterable[str] = tuple(CPU_PATHS), *,
                   jobs: int = 2, folder: str | os.PathLike | None = None,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train each chapter run once per seed and CPU path (one thread each, ``jobs`` at once) and add the
    runs to the record, which is written after every run: an interrupted bench resumes where it stopped.

    A path whose oneDNN kernels are those of a path listed before it runs seed 0 only (``same_as``).
    """
    path_file = record_path(folder)
    record = json.loads(path_file.read_text()) if path_file.is_file() else {"name": NAME, "runs": {}, "kernels": {}}
    record.update(goal={"segmentation": SEGMENTATION_GOAL, "error": ERROR_GOAL}, paths=CPU_PATHS,
                  machine={"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
                  threads_per_run=1)
    seeds, paths = list(seeds), list(paths)
    todo = []
    for label in labels:
        run = CHAPTER_RUNS[label]
        seen: dict[str, str] = {}
        for path in paths:
            used = record["kernels"].setdefault(label, {}).get(path)
            if used is None:
                used = record["kernels"][label][path] = kernels(run, path)
            twin = seen.setdefault(json.dumps(used), path)
            for seed in seeds if twin == path else seeds[:1]:
                if _key(label, path, seed) not in record["runs"]:
                    todo.append((run, path, seed, None if twin == path else twin))
    log(f"[robustness] {len(todo)} runs to do")

    def one(item):
        run, path, seed, twin = item
        words = run.command(seed)
        metrics, seconds = train_once(words, 1, CPU_PATHS[path])
        return item, {"label": run.label, "path": path, "seed": seed, "same_kernels_as": twin,
                      "command": " ".join(f"{k}={v}" for k, v in CPU_PATHS[path].items()) + " coursekit "
                      + shlex.join(words), "metric": run.metric, "value": metrics[run.metric], "metrics": metrics,
                      "wall_seconds": round(seconds, 1), "load_average": os.getloadavg()[0]}

    with ThreadPoolExecutor(jobs) as pool:
        for (run, path, seed, _), entry in pool.map(one, todo):
            record["runs"][_key(run.label, path, seed)] = entry
            record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            tmp = path_file.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(record, indent=1) + "\n")
            os.replace(tmp, path_file)
            log(f"[robustness] {run.label} {path} seed {seed}: {run.metric} {entry['value']:.4f} "
                f"({entry['wall_seconds']:.0f} s)")
    return record


class Robustness:
    """The robustness record, read back: per chapter run, its values over seeds and CPU paths."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = data

    def values(self, label: str, path: str | None = None) -> list[float]:
        """Every recorded value of ``label`` (on ``path`` only, if given); a path that repeats another path's
        kernels contributes its one confirming run."""
        return [r["value"] for r in self.data["runs"].values() if r["label"] == label and path in (None, r["path"])]

    def summary(self, label: str) -> dict[str, float]:
        values = self.values(label)
        if not values:
            raise KeyError(f"the robustness record has no run of {label!r}: run `python benchmarks/robustness.py "
                           f"--runs {shlex.quote(label)}`")
        return {"n": len(values), "min": min(values), "median": statistics.median(values), "max": max(values)}

    def worst(self, label: str) -> float:
        """The worst recorded value of ``label``: the lowest, or for an error the highest."""
        s = self.summary(label)
        return s["min"] if higher_is_better(CHAPTER_RUNS[label].metric) else s["max"]

    def floor(self, label: str) -> float:
        """The lowest value (for an error: the highest) a chapter's live run of ``label`` may show: the
        record's worst run, moved away from the median once more by the worst run's own distance to it.
        Another CPU than those recorded may land a little beyond the worst recorded run, not further."""
        s = self.summary(label)
        if higher_is_better(CHAPTER_RUNS[label].metric):
            return 2 * s["min"] - s["median"]
        return 2 * s["max"] - s["median"]

    def gap(self, label: str) -> float:
        """How far the worst run is from the median: absolute for a score, relative for an error."""
        s = self.summary(label)
        if higher_is_better(CHAPTER_RUNS[label].metric):
            return s["median"] - s["min"]
        return s["max"] / s["median"] - 1

    def within_goal(self, label: str) -> bool:
        goal = SEGMENTATION_GOAL if higher_is_better(CHAPTER_RUNS[label].metric) else ERROR_GOAL
        return self.gap(label) <= goal

    def table(self, labels: Iterable[str] | None = None) -> str:
        """A plain-text table: per chapter run, runs, min / median / max over every seed and path, the gap."""
        labels = [l for l in (labels or CHAPTER_RUNS) if self.values(l)]
        lines = [f"{'run':22s} {'metric':9s} {'runs':>4s} {'min':>7s} {'median':>7s} {'max':>7s} {'gap':>7s} "
                 f"{'goal':>5s}  per path (min / median / max, runs)"]
        for label in labels:
            s = self.summary(label)
            per = "; ".join(f"{p} {min(v):.3f}/{statistics.median(v):.3f}/{max(v):.3f} ({len(v)})"
                            for p in CPU_PATHS if (v := self.values(label, p)))
            lines.append(f"{label:22s} {CHAPTER_RUNS[label].metric:9s} {s['n']:4d} {s['min']:7.4f} {s['median']:7.4f} "
                         f"{s['max']:7.4f} {self.gap(label):7.4f} {'ok' if self.within_goal(label) else 'MISS':>5s}  {per}")
        return "\n".join(lines)


def load_robustness(folder: str | os.PathLike | None = None) -> Robustness:
    """``results/robustness.json`` (or ``folder``'s), made by ``python benchmarks/robustness.py``."""
    path = record_path(folder)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no robustness record (make it with `python benchmarks/robustness.py`)")
    return Robustness(json.loads(path.read_text()))


__all__ = ["CHAPTER_RUNS", "CPU_PATHS", "ChapterRun", "Robustness", "kernels", "load_robustness", "run_robustness"]
