"""The robustness bench (``coursekit.robustness``): which runs it makes, how it resumes, how it reads back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import coursekit.robustness as robustness
from coursekit.robustness import CHAPTER_RUNS, Robustness, load_robustness, run_robustness


@pytest.fixture
def fake(monkeypatch):
    """Runs that report ``value = 0.8 + seed / 100`` (avx2: −0.01) without training; kernels by path."""
    calls = []

    def train_once(words, threads, env=None):
        seed = int(words[words.index("--seed") + 1])
        calls.append((words[1], dict(env or {}), seed))
        shift = -0.01 if (env or {}).get("ONEDNN_MAX_CPU_ISA") == "AVX2" else 0.0
        return {"miou": 0.8 + seed / 100 + shift}, 1.0

    def kernels(run, path):  # avx512_core dispatches the native kernels, avx2 others, no-onednn none
        return {"native": ["convolution:jit:avx512_core"], "avx512_core": ["convolution:jit:avx512_core"],
                "avx2": ["convolution:jit:avx2"], "no-onednn": []}[path]

    monkeypatch.setattr(robustness, "train_once", train_once)
    monkeypatch.setattr(robustness, "kernels", kernels)
    return calls


def test_a_path_with_the_same_kernels_runs_seed_0_only_and_a_rerun_resumes(fake, tmp_path):
    record = run_robustness(["SegNet"], [0, 1, 2], jobs=1, folder=tmp_path, log=lambda _: None)
    done = {(r["path"], r["seed"]) for r in record["runs"].values()}
    assert done == {("native", 0), ("native", 1), ("native", 2), ("avx512_core", 0), ("avx2", 0), ("avx2", 1),
                    ("avx2", 2), ("no-onednn", 0), ("no-onednn", 1), ("no-onednn", 2)}
    twin = record["runs"]["SegNet|avx512_core|0"]
    assert twin["same_kernels_as"] == "native" and twin["command"].startswith("ONEDNN_MAX_CPU_ISA=AVX512_CORE coursekit train segnet")
    assert len(fake) == 10
    run_robustness(["SegNet"], [0, 1, 2, 3], jobs=1, folder=tmp_path, log=lambda _: None)  # only seed 3 is new
    assert len(fake) == 13 and sorted(seed for _, _, seed in fake[10:]) == [3, 3, 3]
    assert json.loads((tmp_path / "robustness.json").read_text())["runs"].keys() == \
        run_robustness(["SegNet"], [0, 1, 2, 3], jobs=1, folder=tmp_path, log=lambda _: None)["runs"].keys()


def test_the_record_reads_back_worst_gap_and_goal(fake, tmp_path):
    run_robustness(["SegNet"], [0, 1, 2], ["native", "avx2"], jobs=2, folder=tmp_path, log=lambda _: None)
    robust = load_robustness(tmp_path)
    assert sorted(robust.values("SegNet", "avx2")) == pytest.approx([0.79, 0.80, 0.81])
    s = robust.summary("SegNet")
    assert s["n"] == 6 and s["min"] == pytest.approx(0.79) and s["max"] == pytest.approx(0.82)
    assert robust.worst("SegNet") == pytest.approx(0.79)
    assert robust.gap("SegNet") == pytest.approx(0.805 - 0.79) and robust.within_goal("SegNet")
    assert robust.floor("SegNet") == pytest.approx(0.79 - (0.805 - 0.79))
    table = robust.table()
    assert "SegNet" in table and "avx2 0.790/0.800/0.810 (3)" in table and "ok" in table
    with pytest.raises(KeyError, match="no run of 'U-Net, 3 epochs, CE'"):
        robust.summary("U-Net, 3 epochs, CE")


def test_an_error_metric_is_judged_relative_to_its_median(monkeypatch):
    monkeypatch.setitem(CHAPTER_RUNS, "toy", robustness.ChapterRun("toy", "part1/x", "dense-ae", "test_mse"))
    runs = {str(i): {"label": "toy", "path": "native", "seed": i, "value": v} for i, v in enumerate([0.010, 0.010, 0.0106])}
    robust = Robustness({"runs": runs})
    assert robust.worst("toy") == pytest.approx(0.0106)
    assert robust.gap("toy") == pytest.approx(0.06) and not robust.within_goal("toy")
    assert robust.floor("toy") == pytest.approx(0.0112)
    assert "MISS" in robust.table(["toy"])


def test_a_missing_record_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/robustness.py"):
        load_robustness(tmp_path)


def test_coursekit_onednn_off_turns_onednn_off_where_the_device_is_resolved():
    code = ("import torch; from coursekit.device import get_device; before = torch.backends.mkldnn.enabled; "
            "get_device('cpu'); print(before, torch.backends.mkldnn.enabled)")
    for value, expected in (("off", "True False"), ("", "True True")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "COURSEKIT_ONEDNN": value})
        assert out.stdout.split() == expected.split()


def test_kernels_reads_onednn_log_of_a_quick_run():
    """The real probe on a tiny conv net: oneDNN held to AVX2 runs AVX2 kernels, and no kernel when off."""
    run = CHAPTER_RUNS["SegNet"]
    avx2 = robustness.kernels(run, "avx2")
    assert any(k.startswith("convolution:") and "avx2" in k for k in avx2), avx2
    assert not any("avx512" in k for k in avx2)
    assert robustness.kernels(run, "no-onednn") == []
