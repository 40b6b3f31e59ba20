"""Recorded multi-seed comparisons behind ``coursekit bench``: the evidence a chapter's claims rest on.

A ``Comparison`` names the question a chapter asks ("does FCN-16s beat FCN-32s?"), the arms it
compares (each a recipe of ``coursekit train`` with its options) and the metric that answers it.
``coursekit bench NAME --seeds 0 1 2 3 4`` trains every arm once per seed, each run the exact
``coursekit train ... --json`` command a reader could type, and writes ``results/NAME.json``: the
commands, every seed's metrics and wall time, the mean and the sample standard deviation

    mean = (1/n) Σ_s m_s,    std = sqrt( Σ_s (m_s − mean)² / (n − 1) ),

the library versions, the device and the threads each run had. Chapters read a record with
``load_record(NAME)`` and show ``record.table()`` and ``plot.seed_spread(record.values(metric))``.

A seed fixes the data split (and the initialisation) for every arm, so arms are compared **seed by
seed**: the paired differences d_s = m_a(s) − m_b(s) and their 95% t-interval

    d̄ ± t_{0.975, n−1} · s_d / √n,    s_d = sqrt( Σ_s (d_s − d̄)² / (n − 1) ).

An ordering is claimed only where that interval excludes 0 (``record.separated(a, b)``,
``record.better(a, b)``); otherwise the chapter says "within noise". ``record.verdict(a, b)`` says
which, with the paired difference, its interval and on how many seeds each arm was ahead. A run far
from the rest of its arm (more than 3 scaled median absolute deviations from the arm's median,
``far_runs``) is counted and shown beside the median, not averaged away.
This module imports no torch: the runs are separate processes.
"""

from __future__ import annotations

import json
import math
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
from typing import Any, Iterable, Mapping, Sequence

from coursekit.errors import UsageError
from coursekit.recipes import NOISE_LEVELS, OPTIONS, get_recipe

# The records that ship with the course (``results/`` at the repository's root) unless $COURSEKIT_RESULTS
# names another folder.
RESULTS_ENV = "COURSEKIT_RESULTS"
MIN_SEEDS = 5  # a record a chapter relies on holds at least this many seeds per arm


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: a ``label`` for tables, the ``recipe`` and the ``options`` it runs with."""

    label: str
    recipe: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def command(self, seed: int, quick: bool = False, device: str | None = None) -> list[str]:
        """The ``coursekit train`` command line of this arm for one seed (without the program name)."""
        words = ["train", self.recipe, "--seed", str(seed)]
        for key, value in self.options.items():
            words += [OPTIONS[key], str(value)]
        words += ["--quick"] * quick + ["--device", device] * bool(device)
        return words + ["--json", "--no-progress"]


@dataclass(frozen=True)
class Comparison:
    """A question a chapter answers with recorded runs: its arms and the ``metric`` that decides."""

    name: str
    question: str
    chapters: tuple[str, ...]
    metric: str
    higher_is_better: bool
    arms: tuple[Arm, ...]
    metrics: tuple[str, ...] = ()  # further metrics the chapter's table shows

    def arm(self, label: str) -> Arm:
        for arm in self.arms:
            if arm.label == label:
                return arm
        raise KeyError(f"{self.name} has no arm {label!r} (it has {', '.join(a.label for a in self.arms)})")


_PLAIN_32 = {"code_size": 32, "epochs": 100}  # the plain AE at the regularised recipes' size and budget
_SEGMENTERS = tuple(Arm(label, name) for label, name in
                    [("FCN-32s", "fcn32s"), ("FCN-16s", "fcn16s"), ("FCN-8s", "fcn8s"), ("SegNet", "segnet"),
                     ("U-Net", "unet")])

COMPARISONS: dict[str, Comparison] = {c.name: c for c in [
    Comparison("reconstruction-loss", "Does the plain autoencoder reconstruct test digits better when trained on "
               "squared error or on cross-entropy (chapter 1)?", ("part1/01_plain_autoencoder",), "test_mse", False,
               (Arm("squared error", "dense-ae"), Arm("cross-entropy", "dense-ae", {"loss": "bce"})),
               ("train_mse",)),
    Comparison("nonlinear-vs-linear", "Does a non-linear autoencoder (a hidden layer of 128 tanh units on each "
               "side) reconstruct test digits better than the linear one, which reaches PCA, at code sizes 1, 16 "
               "and 32 (chapter 2)?", ("part1/02_linear_ae_pca",), "test_mse", False,
               tuple(Arm(f"{name}, k = {k}", recipe, {"code_size": k}) for k in (1, 2, 4, 8, 16, 32)
                     for name, recipe in (("linear", "linear-ae"), ("non-linear", "deep-ae")))),
    Comparison("conv-vs-dense", "With the same 16-number code and 60 epochs, does the convolutional autoencoder "
               "reconstruct better than the dense one, and than a deeper dense one with more parameters, and "
               "does its decoder upsample better by transposed convolutions or by resizing then convolving "
               "(chapter 4)?", ("part1/04_conv_autoencoder",), "test_mse", False,
               (Arm("dense", "dense-ae", {"epochs": 60}),
                Arm("deeper dense", "deep-ae", {"epochs": 60, "lr": 0.01}),
                Arm("convolutional", "conv-ae", {"epochs": 60}),
                Arm("convolutional, resize", "conv-ae", {"epochs": 60, "upsample": "resize"})),
               ("train_mse", "parameters")),
    Comparison("regularisers", "What does each regulariser cost in reconstruction of clean digits, does it "
               "restore masked digits better than the plain autoencoder, and are its codes better features for "
               "a linear classifier (chapters 5 and 7)?",
               ("part1/05_sparse_autoencoder", "part1/07_contractive_autoencoder"),
               "test_mse", False,
               (Arm("plain", "dense-ae", _PLAIN_32), Arm("sparse", "sparse-ae"), Arm("denoising", "denoising-ae"),
                Arm("contractive", "contractive-ae")),
               ("psnr_masked", "train_mse", "probe_accuracy", "probe_accuracy_50", "probe_masked", "filter_smoothness")),
    Comparison("denoising-noise", "Trained on Gaussian, masking or salt-and-pepper noise, does each denoising "
               "autoencoder restore test digits corrupted by its own noise better than the plain autoencoder "
               "(chapter 6)?", ("part1/06_denoising_autoencoder",), "psnr_masked", True,
               (Arm("plain", "dense-ae", _PLAIN_32),
                *(Arm(f"denoising, {kind.replace('_', ' ')}", "denoising-ae", {"noise": kind, "level": level})
                  for kind, level in NOISE_LEVELS.items())),
               ("psnr_gaussian", "psnr_salt_and_pepper", "test_mse", "probe_accuracy", "probe_masked")),
    Comparison("pretraining", "Does greedy layer-wise pretraining make the stacked classifier more accurate than "
               "the same network from random weights, with 50, 200 or all 1,259 labelled digits (chapter 8)?",
               ("part1/08_stacked_autoencoder",), "test_accuracy", True,
               tuple(Arm(f"{name} ({labels or 'all'} labels)", recipe, {"labels": labels} if labels else {})
                     for labels in (50, 200, None)
                     for name, recipe in (("pretrained", "stacked-ae"), ("scratch", "scratch-classifier")))),
    Comparison("segmentation", "Which of the five segmentation networks segments the shapes scenes best, "
               "with the same data, budget and loss (chapters 9, 10 and 11)?",
               ("part2/09_fcn", "part2/10_segnet", "part2/11_unet"), "miou", True, _SEGMENTERS,
               ("pixel_accuracy", "dice", "iou_circle", "iou_square", "iou_triangle")),
    Comparison("unet-loss", "With short training (3 epochs), does adding the soft Dice loss to cross-entropy "
               "help U-Net on the rare classes (chapter 11)?", ("part2/11_unet",), "miou", True,
               (Arm("cross-entropy", "unet", {"epochs": 3}), Arm("cross-entropy + Dice", "unet",
                                                                 {"epochs": 3, "loss": "ce+dice"})),
               ("iou_circle", "iou_square", "iou_triangle")),
]}


# Which end of each metric a verdict may call better; a metric not listed has no better end.
_HIGHER = {"test_accuracy", "val_accuracy", "psnr_masked", "psnr_gaussian", "psnr_salt_and_pepper", "probe_accuracy",
           "probe_accuracy_50", "probe_masked", "psnr_denoised", "miou", "dice", "pixel_accuracy",
           "iou_background", "iou_circle", "iou_square", "iou_triangle", "box_ap", "box_ap50", "mask_ap", "mask_ap50"}
_LOWER = {"test_mse", "train_mse", "denoised_test_mse", "pca_test_mse", "jacobian_frobenius_sq", "code_sensitivity",
          "kl_train", "train_seconds", "max_principal_angle_deg"}


def higher_is_better(metric: str) -> bool:
    """Whether a higher value of ``metric`` is better (accuracies, IoUs, PSNR) or a lower one (errors,
    sensitivities, times); a ``ValueError`` for a metric with no better end (``rho``, ``labels``, ...)."""
    if metric in _HIGHER or metric in _LOWER:
        return metric in _HIGHER
    raise ValueError(f"{metric!r} has no better end: a verdict compares one of {sorted(_HIGHER | _LOWER)}")


def get_comparison(name: str) -> Comparison:
    if name not in COMPARISONS:
        raise UsageError(f"unknown comparison {name!r}: use one of {', '.join(COMPARISONS)}")
    return COMPARISONS[name]


def summarise(values: Iterable[float]) -> dict[str, float]:
    """``mean``, sample ``std`` (n − 1; 0 for one value), ``min``, ``max`` and ``n`` of the values."""
    values = [float(v) for v in values]
    n = len(values)
    if not n:
        raise ValueError("no values to summarise")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": n}


# t_{0.975, df}: the two-sided 95% quantile of Student's t for df = 1..30 (beyond, df = 30's, a little wide)
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
FAR = 3.0  # a run more than FAR scaled median absolute deviations from its arm's median is far from the rest,
FAR_SHARE = 0.2  # if it is also more than this share of the median away (a failed run, not spread)


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """The paired comparison of two arms measured on the same seeds (``a[i]`` and ``b[i]`` share seed i):
    mean difference ``diff`` = d̄, its sample ``std``, the 95% t-interval ``low``, ``high`` (d̄ ∓ t·s_d/√n;
    both d̄ with one pair), ``wins_a`` / ``wins_b`` (seeds where each is larger) and ``n``."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired values need the same seeds on both sides: {len(a)} and {len(b)} runs")
    d = summarise(x - y for x, y in zip(a, b))
    n = int(d["n"])
    half = T_975[min(n - 1, len(T_975)) - 1] * d["std"] / math.sqrt(n) if n > 1 else 0.0
    return {"diff": d["mean"], "std": d["std"], "low": d["mean"] - half, "high": d["mean"] + half,
            "wins_a": sum(x > y for x, y in zip(a, b)), "wins_b": sum(y > x for x, y in zip(a, b)), "n": n}


def far_runs(values: Sequence[float]) -> list[int]:
    """Indices of the runs far from the rest: |m − median| > FAR · 1.4826 · MAD (the median absolute
    deviation, scaled to a normal sample's standard deviation) and > ``FAR_SHARE`` of |median| (with five
    seeds the MAD alone flags ordinary spread)."""
    median = statistics.median(values)
    mad = 1.4826 * statistics.median(abs(v - median) for v in values)
    return [i for i, v in enumerate(values) if abs(v - median) > max(FAR * mad, FAR_SHARE * abs(median))]


def results_dir() -> Path:
    """``$COURSEKIT_RESULTS``, else the repository's ``results/`` (beside ``src/``)."""
    return Path(os.environ.get(RESULTS_ENV) or Path(__file__).resolve().parents[2] / "results")


def train_once(words: list[str], threads: int, env: Mapping[str, str] | None = None) -> tuple[dict[str, float], float]:
    """One ``coursekit train`` process (``words`` after the program name) with ``threads`` CPU threads and
    ``env`` added to the environment: its final metrics and wall seconds; a failure raises, naming the run."""
    env = dict(os.environ, **(env or {}), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.pop("COURSEKIT_QUICK", None)  # the command's own --quick decides, as it does for a reader
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "coursekit", *words], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"`coursekit {shlex.join(words)}` failed with exit {out.returncode}: {last}")
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    metrics.pop("model", None)
    return metrics, seconds


def other_runs() -> list[int]:
    """The process ids of ``coursekit train`` or ``coursekit bench`` processes running on this machine
    outside this one and its children (read from ``/proc``; none where there is no ``/proc``)."""
    mine = {os.getpid()}
    found = []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in sorted(entries, key=int):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                words = f.read().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent in mine:  # pids grow, so a child is listed after its parent (wrap-around aside)
            mine.add(int(entry))
            continue
        command = " ".join(words)  # `coursekit train ...` or `python -m coursekit train ...`
        if "coursekit train" in command or "coursekit bench" in command:
            found.append(int(entry))
    return found


def machine_load() -> dict[str, float]:
    """What else holds the cores now: the 1-minute load average, the cores and how many ``other_runs()``."""
    return {"load_average": round(os.getloadavg()[0], 2), "cpus": os.cpu_count() or 1, "other_runs": len(other_runs())}


def busy_warning(load: Mapping[str, float]) -> str | None:
    """A warning to print when the machine is not idle enough to time runs (another bench, or a load above
    half the cores), else ``None``: the metrics stay valid, the wall times do not compare."""
    if load["other_runs"] or load["load_average"] > 0.5 * load["cpus"]:
        return (f"coursekit bench: WARNING: this machine is busy ({load['other_runs']} other coursekit "
                f"train/bench process(es), load {load['load_average']:g} on {load['cpus']:g} cores): the "
                "metrics are valid, but the wall times in this record will not compare with an idle run's; "
                "rerun alone to time")
    return None


def run_comparison(name: str, seeds: list[int], *, quick: bool = False, device: str | None = None,
                   jobs: int = 1, progress: bool = True) -> dict[str, Any]:
    """Train every arm of comparison ``name`` once per seed and return its record (see the module's doc).

    ``jobs`` runs go at once, each with ``cores // jobs`` threads (recorded as ``threads_per_run``); wall
    times are only comparable between runs of one record made on an otherwise idle machine. The first
    run that fails stops the bench with its command and error; no record is written.
    """
    from tqdm.auto import tqdm

    comparison = get_comparison(name)
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds repeats a seed: {seeds}")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    runs = [(arm, seed) for arm in comparison.arms for seed in seeds]
    load = machine_load()
    warning = busy_warning(load)
    if warning:
        print(warning, file=sys.stderr)
    start = time.perf_counter()
    pool = ThreadPoolExecutor(jobs)
    try:
        with tqdm(total=len(runs), desc=name, disable=not progress) as bar:
            futures = [pool.submit(_timed_run, arm.command(seed, quick, device), threads) for arm, seed in runs]
            for future in futures:
                future.add_done_callback(lambda _: bar.update())
            outcomes = [future.result() for future in futures]  # the first failure raises here
    finally:
        pool.shutdown(cancel_futures=True)  # after a failure: start no further run
    arms = []
    for arm in comparison.arms:
        done = [(seed, outcome) for (a, seed), outcome in zip(runs, outcomes) if a is arm]
        common = set.intersection(*(set(metrics) for _, (metrics, _, _) in done))  # what every seed reported
        arms.append({
            "label": arm.label, "recipe": arm.recipe, "options": dict(arm.options),
            "runs": [{"seed": seed, "command": "coursekit " + shlex.join(arm.command(seed, quick, device)),
                      "metrics": metrics, "wall_seconds": round(seconds, 2), "load_after": after}
                     for seed, (metrics, seconds, after) in done],
            "summary": {key: summarise(m[key] for _, (m, _, _) in done) for key in done[0][1][0] if key in common},
        })
    return {
        "comparison": name, "question": comparison.question, "chapters": list(comparison.chapters),
        "metric": comparison.metric, "higher_is_better": comparison.higher_is_better,
        "command": "coursekit bench " + shlex.join([name, "--seeds", *map(str, seeds), "--jobs", str(jobs),
                                                    *["--quick"] * quick, *["--device", device] * bool(device)]),
        "seeds": list(seeds), "quick": quick, "device": device or "default", "threads_per_run": threads,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": _versions(), "wall_seconds": round(time.perf_counter() - start, 1),
        "load_at_start": load, "timed_alone": warning is None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "arms": arms,
    }


def _timed_run(words: list[str], threads: int) -> tuple[dict[str, float], float, float]:
    """``train_once`` and the 1-minute load average when it ended (recorded beside its wall time)."""
    metrics, seconds = train_once(words, threads)
    return metrics, seconds, round(os.getloadavg()[0], 2)


def _versions() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "coursekit", "info", "--json"], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def write_record(record: Mapping[str, Any], folder: str | os.PathLike | None = None) -> Path:
    """Write ``record`` to ``FOLDER/<comparison>.json`` atomically and return the path."""
    folder = Path(folder) if folder is not None else results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['comparison']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)
    return path


class Record:
    """A recorded comparison, read back: per arm, every seed's metric and the mean ± std."""

    def __init__(self, data: Mapping[str, Any], path: Path | None = None):
        self.data, self.path = data, path
        self.metric = data["metric"]
        self.arms = {arm["label"]: arm for arm in data["arms"]}

    def with_arm(self, label: str, values: Mapping[str, Sequence[float]]) -> "Record":
        """This record and one more arm measured elsewhere, one value per recorded seed of each metric: a
        baseline that needs no training, say, computed on each seed's split. The file is not changed."""
        seeds = self.data["seeds"]
        if label in self.arms or any(len(v) != len(seeds) for v in values.values()):
            raise ValueError(f"arm {label!r} must be new and have one value per recorded seed ({len(seeds)})")
        runs = [{"seed": seed, "metrics": {m: float(v[i]) for m, v in values.items()}} for i, seed in enumerate(seeds)]
        return Record({**self.data, "arms": [*self.data["arms"], {"label": label, "runs": runs}]}, self.path)

    def values(self, metric: str | None = None, arms: Iterable[str] | None = None) -> dict[str, list[float]]:
        """Each arm's per-seed values of ``metric`` (the comparison's own by default), for ``arms`` (all)."""
        metric = metric or self.metric
        return {label: [run["metrics"][metric] for run in self.arms[label]["runs"]] for label in arms or self.arms}

    def summary(self, label: str, metric: str | None = None) -> dict[str, float]:
        """mean, std, min, max and n of one arm's metric (``summarise``)."""
        return summarise(self.values(metric, [label])[label])

    def paired(self, a: str, b: str, metric: str | None = None) -> dict[str, float]:
        """``paired`` of arms ``a`` and ``b``, seed by seed over the seeds both recorded."""
        runs = {label: {run.get("seed", i): run["metrics"][metric or self.metric]
                        for i, run in enumerate(self.arms[label]["runs"])} for label in (a, b)}
        seeds = [s for s in runs[a] if s in runs[b]]
        return paired([runs[a][s] for s in seeds], [runs[b][s] for s in seeds])

    def separated(self, a: str, b: str, metric: str | None = None) -> bool:
        """Whether the 95% interval of the paired difference of ``a`` and ``b`` excludes 0; never with
        fewer than two shared seeds (one pair has no spread to compare with)."""
        p = self.paired(a, b, metric)
        return p["n"] >= 2 and (p["low"] > 0 or p["high"] < 0)

    def better(self, a: str, b: str, metric: str | None = None) -> bool:
        """Whether arm ``a`` beats arm ``b`` beyond noise: separated, and ``a`` on the better side."""
        higher = self.data["higher_is_better"] if metric in (None, self.metric) else higher_is_better(metric)
        return self.separated(a, b, metric) and (self.paired(a, b, metric)["diff"] > 0) == higher

    def far(self, label: str, metric: str | None = None) -> int:
        """How many of an arm's runs are far from the rest (``far_runs``)."""
        return len(far_runs(self.values(metric, [label])[label]))

    def describe(self, label: str, metric: str | None = None, digits: int = 3) -> str:
        """``mean ± std``, and where some runs are far from the rest, the median and how many."""
        s, far = self.summary(label, metric), self.far(label, metric)
        text = f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"
        if far:
            median = statistics.median(self.values(metric, [label])[label])
            text += f" (median {median:.{digits}f}; {far} of {s['n']} runs far from the rest)"
        return text

    def verdict(self, a: str, b: str, metric: str | None = None, digits: int = 3) -> str:
        """One sentence: which arm is ahead beyond noise, or that the two are within noise, with the paired
        difference, its 95% interval, each arm's wins over the seeds and mean ± std."""
        name = metric or self.metric
        p = self.paired(a, b, metric)
        higher = self.data["higher_is_better"] if metric in (None, self.metric) else higher_is_better(metric)
        wins_a, wins_b = (p["wins_a"], p["wins_b"]) if higher else (p["wins_b"], p["wins_a"])
        arms = f"{a} {self.describe(a, metric, digits)}, {b} {self.describe(b, metric, digits)}"
        if p["n"] < 2:
            return f"{a} and {b}: too few runs on {name} for a verdict ({arms})"
        paired_text = (f"paired difference {p['diff']:+.{digits}f}, 95% interval {p['low']:+.{digits}f} to "
                       f"{p['high']:+.{digits}f}; {a} better on {wins_a} of {p['n']} seeds, {b} on {wins_b}; {arms}")
        if self.better(a, b, metric):
            return f"{a} beats {b} on {name} ({paired_text})"
        if self.better(b, a, metric):
            return f"{b} beats {a} on {name} ({paired_text})"
        return f"{a} and {b} are within noise on {name} ({paired_text})"

    def contains(self, label: str, value: float, metric: str | None = None) -> bool:
        """Whether a fresh run's ``value`` lies in the recorded spread: within [min − std, max + std]."""
        s = self.summary(label, metric)
        return s["min"] - s["std"] <= value <= s["max"] + s["std"]

    def table(self, metrics: Iterable[str] | None = None, arms: Iterable[str] | None = None, digits: int = 3):
        """An HTML/plain ``plot.Table``: one row per arm (all, or ``arms``), mean ± std of each metric."""
        from coursekit.plot import Column, Table

        metrics = list(metrics) if metrics is not None else [self.metric, *COMPARISONS[self.data["comparison"]].metrics]
        rows = {}
        for label in arms or self.arms:
            rows[label] = {"seeds": len(self.arms[label]["runs"])}
            for m in metrics:
                if m in self.arms[label]["runs"][0]["metrics"]:  # an arm may not report every metric
                    rows[label][m] = self.describe(label, m, digits)
        columns = [Column("seeds", "seeds", "{:d}", None)]
        columns += [Column(m, m.replace("_", " "), "{}", None) for m in metrics]
        return Table(rows, columns, index="arm")

    def __repr__(self) -> str:
        return f"Record({self.data['comparison']!r}, arms={list(self.arms)}, seeds={self.data['seeds']})"


def load_record(name: str, folder: str | os.PathLike | None = None) -> Record:
    """The record of comparison ``name`` from ``results_dir()`` (or ``folder``); a missing or broken file
    raises ``FileNotFoundError`` / ``ValueError`` naming it and the command that remakes it."""
    path = (Path(folder) if folder is not None else results_dir()) / f"{name}.json"
    remake = f"coursekit bench {name} --seeds {' '.join(map(str, range(MIN_SEEDS)))}"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no record of comparison {name!r} (make it with `{remake}`)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); remake it with `{remake}`") from err
    return Record(data, path)


__all__ = ["Arm", "COMPARISONS", "Comparison", "MIN_SEEDS", "Record", "far_runs", "get_comparison", "higher_is_better",
           "load_record", "paired", "results_dir", "run_comparison", "summarise", "train_once", "write_record"]
