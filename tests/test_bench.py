"""Recorded multi-seed comparisons: the statistics, the verdicts, and every record shipped in results/."""

import json
import math
import os
import shlex
import signal
import statistics

import pytest

from coursekit.bench import (COMPARISONS, MIN_SEEDS, T_975, Record, far_runs, load_record, paired, results_dir,
                             run_comparison, summarise, write_record)
from coursekit.cli import build_parser
from coursekit.robustness import NAME as ROBUSTNESS

# results/ also holds the robustness record (tests/test_robustness.py), which is not a comparison
RECORDS = sorted(p.stem for p in results_dir().glob("*.json") if p.stem != ROBUSTNESS)


def fake_record(values: dict[str, list[float]], higher_is_better=True) -> Record:
    arms = [{"label": label, "recipe": label, "options": {},
             "runs": [{"seed": s, "command": "", "metrics": {"score": v}} for s, v in enumerate(vs)]}
            for label, vs in values.items()]
    return Record({"comparison": "fake", "metric": "score", "higher_is_better": higher_is_better,
                   "seeds": list(range(5)), "arms": arms})


def test_summarise_is_the_mean_and_sample_std():
    values = [0.31, 0.35, 0.29, 0.40, 0.33]
    s = summarise(values)
    assert s["mean"] == pytest.approx(statistics.mean(values), abs=1e-15)
    assert s["std"] == pytest.approx(statistics.stdev(values), abs=1e-15)  # n − 1, not n
    assert (s["min"], s["max"], s["n"]) == (0.29, 0.40, 5)
    assert summarise([2.0]) == {"mean": 2.0, "std": 0.0, "min": 2.0, "max": 2.0, "n": 1}


def test_the_paired_interval_is_the_t_interval_of_the_differences():
    from scipy import stats

    a, b = [0.80, 0.82, 0.81, 0.79, 0.83], [0.78, 0.81, 0.80, 0.79, 0.80]
    d = [x - y for x, y in zip(a, b)]
    half = stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
    p = paired(a, b)
    assert p["diff"] == pytest.approx(statistics.mean(d)) and p["std"] == pytest.approx(statistics.stdev(d))
    assert (p["low"], p["high"]) == (pytest.approx(statistics.mean(d) - half, abs=1e-4),
                                     pytest.approx(statistics.mean(d) + half, abs=1e-4))
    assert (p["wins_a"], p["wins_b"], p["n"]) == (4, 0, 5)
    for df, t in enumerate(T_975, start=1):  # the table is Student's t
        assert t == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4), df
    with pytest.raises(ValueError, match="same seeds"):
        paired([1.0, 2.0], [1.0])


def test_paired_seeds_separate_what_unpaired_spreads_hide():
    # each seed moves both arms together (its split); a is ahead by 0.01 on every seed
    b = [0.70, 0.80, 0.75, 0.85, 0.78]
    r = fake_record({"a": [v + 0.01 for v in b], "b": b})
    s = r.summary("a")
    assert s["mean"] - s["std"] < r.summary("b")["mean"] + r.summary("b")["std"]  # the mean ± std overlap
    assert r.better("a", "b") and "better on 5 of 5 seeds" in r.verdict("a", "b")
    # the same values with the seeds shuffled in one arm: no longer paired, no longer separated
    shuffled = fake_record({"a": [b[i] + 0.01 for i in (3, 0, 4, 1, 2)], "b": b})
    assert not shuffled.separated("a", "b") and "within noise" in shuffled.verdict("a", "b")


def test_a_failed_run_is_counted_and_shown_not_averaged_away():
    values = [0.933, 0.642, 0.940, 0.937, 0.929]
    assert far_runs(values) == [1] and far_runs([0.80, 0.82, 0.81, 0.79, 0.83]) == []
    r = fake_record({"U-Net": values, "b": [0.90, 0.91, 0.90, 0.92, 0.91]})
    assert r.far("U-Net") == 1 and "(median 0.933; 1 of 5 runs far from the rest)" in r.verdict("U-Net", "b")
    assert "median" not in r.describe("b")


def test_an_ordering_is_claimed_only_where_the_intervals_separate():
    r = fake_record({"a": [0.80, 0.82, 0.81, 0.79, 0.83], "b": [0.70, 0.72, 0.69, 0.71, 0.73],
                     "c": [0.70, 0.90, 0.75, 0.85, 0.80]})
    assert r.separated("a", "b") and r.better("a", "b") and not r.better("b", "a")
    assert r.verdict("b", "a").startswith("a beats b on score (")
    assert not r.separated("a", "c") and not r.better("a", "c") and not r.better("c", "a")
    assert "within noise" in r.verdict("a", "c")
    lower = fake_record({"a": [1.0, 1.1, 1.2, 1.0, 1.1], "b": [2.0, 2.1, 2.0, 2.2, 2.1]}, higher_is_better=False)
    assert lower.better("a", "b") and lower.verdict("a", "b").startswith("a beats b")


def test_a_fresh_value_is_inside_the_spread_only_near_the_recorded_runs():
    r = fake_record({"a": [0.80, 0.82, 0.81, 0.79, 0.83]})
    std = statistics.stdev([0.80, 0.82, 0.81, 0.79, 0.83])
    assert r.contains("a", 0.81) and r.contains("a", 0.79 - 0.9 * std)
    assert not r.contains("a", 0.79 - 1.1 * std) and not r.contains("a", 0.9)


def test_a_missing_or_broken_record_names_the_command_that_remakes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="coursekit bench nothing --seeds 0 1 2 3 4"):
        load_record("nothing", tmp_path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        load_record("broken", tmp_path)


def test_every_comparison_chapters_draw_has_a_record():
    assert sorted(COMPARISONS) == RECORDS


@pytest.mark.parametrize("name", RECORDS)
def test_record_is_consistent(name):
    """Per-seed values recompute the stored summaries; every command parses and is the arm's own command."""
    record = load_record(name)
    data = record.data
    comparison = COMPARISONS[name]
    assert [a["label"] for a in data["arms"]] == [a.label for a in comparison.arms]
    assert data["question"] == comparison.question and data["metric"] == comparison.metric
    assert len(data["seeds"]) >= MIN_SEEDS and not data["quick"]
    assert shlex.split(data["command"])[:3] == ["coursekit", "bench", name]
    parser = build_parser()
    for arm, spec in zip(data["arms"], comparison.arms):
        assert (arm["recipe"], arm["options"]) == (spec.recipe, dict(spec.options))
        assert [run["seed"] for run in arm["runs"]] == data["seeds"]
        for run in arm["runs"]:
            words = shlex.split(run["command"])
            assert words[0] == "coursekit" and words[1:] == spec.command(run["seed"], device=words[-3]
                                                                         if "--device" in words else None)
            args = parser.parse_args(words[1:])
            assert (args.name, args.seed) == (spec.recipe, run["seed"])
            assert all(math.isfinite(v) for v in run["metrics"].values())
        for metric, stored in arm["summary"].items():
            fresh = summarise(run["metrics"][metric] for run in arm["runs"])
            assert fresh == pytest.approx(stored, rel=1e-12), (arm["label"], metric)
        assert data["metric"] in arm["summary"]


@pytest.mark.parametrize("name", RECORDS)
def test_one_seed_reruns_in_quick_form(name, tmp_path):
    """``coursekit bench NAME`` itself, one seed, quick: the same arms, commands and metrics as the record."""
    recorded = load_record(name).data
    seed = recorded["seeds"][0]
    fresh = run_comparison(name, [seed], quick=True, device="cpu", jobs=2, progress=False)
    path = write_record(fresh, tmp_path)
    again = json.loads(path.read_text())
    assert again["quick"] and again["seeds"] == [seed]
    for old, new, spec in zip(recorded["arms"], again["arms"], COMPARISONS[name].arms):
        # every metric the record holds is still reported (a metric added to the recipes since may be new)
        assert new["label"] == old["label"] and set(old["summary"]) <= set(new["summary"])
        assert new["runs"][0]["command"] == "coursekit " + shlex.join(spec.command(seed, quick=True, device="cpu"))


def test_a_metric_only_some_arms_report_is_summarised_for_those():
    r = fake_record({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [1.0, 1.0, 1.0, 1.0, 1.0]})
    for run in r.arms["a"]["runs"]:
        run["metrics"]["only_a"] = 0.5
    assert r.summary("a", "only_a")["mean"] == 0.5
    assert "only a" in str(r.table(["score", "only_a"])) and r.contains("a", 0.5, "only_a")


def test_an_arm_measured_elsewhere_joins_a_record_without_changing_it():
    r = fake_record({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [1.0, 1.0, 1.0, 1.0, 1.0]})
    both = r.with_arm("baseline", {"score": [9.0, 9.5, 10.0, 9.0, 9.5]})
    assert both.better("baseline", "a") and both.summary("baseline")["n"] == 5
    assert "baseline" not in r.arms and [a["label"] for a in r.data["arms"]] == ["a", "b"]
    with pytest.raises(ValueError, match="one value per recorded seed"):
        r.with_arm("short", {"score": [1.0, 2.0]})
    with pytest.raises(ValueError, match="must be new"):
        r.with_arm("a", {"score": [1.0] * 5})


def test_one_run_each_is_never_an_ordering():
    r = fake_record({"a": [0.9], "b": [0.1]})
    assert not r.separated("a", "b") and not r.better("a", "b")
    assert "too few runs" in r.verdict("a", "b")


def test_a_metric_without_a_better_end_gets_no_verdict():
    from coursekit.bench import higher_is_better

    assert higher_is_better("miou") and not higher_is_better("test_mse")
    assert not higher_is_better("max_principal_angle_deg")
    with pytest.raises(ValueError, match="'labels' has no better end"):
        higher_is_better("labels")


def test_the_first_failing_run_stops_the_bench_with_its_command(monkeypatch):
    import coursekit.bench as bench

    calls = []

    def fake_run(words, threads, env=None):
        calls.append(words)
        raise RuntimeError(f"`coursekit {' '.join(words)}` failed with exit 1: boom")

    monkeypatch.setattr(bench, "train_once", fake_run)
    with pytest.raises(RuntimeError, match="train dense-ae --seed 0 .*boom"):
        run_comparison("reconstruction-loss", [0, 1, 2], quick=True, jobs=1, progress=False)
    assert len(calls) < 6  # the remaining runs were cancelled, not all started


def test_a_bench_on_a_busy_machine_says_so_and_records_the_load(monkeypatch, capsys):
    import coursekit.bench as bench

    monkeypatch.setattr(bench, "train_once", lambda words, threads, env=None: ({"test_mse": 0.01}, 1.0))
    monkeypatch.setattr(bench, "machine_load", lambda: {"load_average": 3.5, "cpus": 2, "other_runs": 1})
    record = run_comparison("reconstruction-loss", [0, 1], quick=True, progress=False)
    assert "WARNING: this machine is busy (1 other coursekit train/bench process(es), load 3.5 on 2 cores)" in \
        capsys.readouterr().err
    assert record["timed_alone"] is False and record["load_at_start"]["other_runs"] == 1
    assert all("load_after" in run for arm in record["arms"] for run in arm["runs"])
    monkeypatch.setattr(bench, "machine_load", lambda: {"load_average": 0.2, "cpus": 2, "other_runs": 0})
    assert run_comparison("reconstruction-loss", [0, 1], quick=True, progress=False)["timed_alone"] is True
    assert "WARNING" not in capsys.readouterr().err


def test_other_runs_sees_a_coursekit_train_outside_this_process():
    import subprocess
    import sys

    from coursekit.bench import other_runs

    # a process that looks like a run, started by another parent (a shell that exits at once)
    started = subprocess.run(["sh", "-c", f"{sys.executable} -c 'import time; time.sleep(30)' coursekit train x >/dev/null 2>&1 & "
                              "echo $!"], check=True, capture_output=True, text=True)
    pid = int(started.stdout.split()[-1])
    try:
        assert pid in other_runs()
        assert os.getpid() not in other_runs()  # nor this process, nor its children
    finally:
        os.kill(pid, signal.SIGKILL)
