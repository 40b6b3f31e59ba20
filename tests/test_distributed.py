"""Data-parallel training: ``coursekit train`` under torchrun (gloo on the CPU, nccl on a GPU), the shards of
``Batches``, and rank 0 as the only process that prints or writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from coursekit.data import Batches


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "COURSEKIT_QUICK": "1", "OMP_NUM_THREADS": "1", **extra}


def _torchrun(nproc: int, *args: str, cwd, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--master-port", str(_free_port()), "-m", "coursekit", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=_env(**env), timeout=timeout)


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


# --- Batches.shard ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, batch_size, world", [(64, 32, 2), (70, 32, 2), (10, 4, 3), (5, 8, 4)])
def test_shards_are_disjoint_cover_each_batch_and_keep_the_step_count(n, batch_size, world):
    x = torch.arange(n)
    whole = Batches(x, batch_size=batch_size, seed=3)
    shards = [Batches(x, batch_size=batch_size, seed=3).shard(r, world, augment_seed=r) for r in range(world)]
    assert all(len(s) == len(whole) for s in shards)
    for epoch in range(2):  # a new order every epoch, the same on every rank
        for (batch,), *parts in zip(whole, *shards):
            parts = [p[0] for p in parts]
            share = -(-len(batch) // world)
            assert all(len(p) == share for p in parts)  # batch_size // world when it divides
            got = torch.cat(parts)
            assert set(got.tolist()) == set(batch.tolist())  # covers the global batch...
            if len(batch) % world == 0:
                assert len(set(got.tolist())) == len(got)  # ...and the parts are disjoint


def _old_batches(x: torch.Tensor, batch_size: int, seed: int):
    """What ``Batches(x, augment=True)`` yielded before it could shard: one generator for order and flips."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = x[order[start:start + batch_size]]
            flip_h, flip_v, transpose = torch.rand(3, generator=generator) < 0.5
            batch = batch.flip(-1) if flip_h else batch
            batch = batch.flip(-2) if flip_v else batch
            yield batch.transpose(-1, -2) if transpose else batch


def test_unsharded_batches_are_what_they_were_and_shards_augment_on_their_own():
    x = torch.arange(10 * 4 * 4, dtype=torch.float32).reshape(10, 1, 4, 4)
    batcher = Batches(x, batch_size=4, augment=True, seed=5)
    new = [b[0] for _ in range(2) for b in batcher]
    assert all(torch.equal(a, b) for a, b in zip(new, _old_batches(x, 4, 5), strict=True))
    # A shard of one draws the same order but its flips from its own generator.
    shard = Batches(x, batch_size=4, augment=True, seed=5).shard(0, 1, augment_seed=123)
    again = Batches(x, batch_size=4, augment=True, seed=5).shard(0, 1, augment_seed=123)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(shard, again, strict=True))
    with pytest.raises(ValueError, match="rank 2"):
        Batches(x, batch_size=4).shard(2, 2, augment_seed=0)


# --- the command line under torchrun ---------------------------------------------------------------------

def test_two_gloo_processes_train_like_one_and_only_rank_0_writes(tmp_path, quick_recipe):
    out = _torchrun(2, "dense-ae", "--quick", "--json", "--device", "cpu", "--out", str(tmp_path / "x.pt"),
                    cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = _json_lines(out.stdout)
    assert len(lines) == 1 and lines[0]["model"] == "dense-ae"  # rank 1 printed nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "x.pt"]  # one checkpoint + sidecar
    assert out.stderr.count("saved ") == 1
    sidecar = json.loads((tmp_path / "x.json").read_text())
    assert sidecar["metrics"] == {k: v for k, v in lines[0].items() if k != "model"}
    # Same global batch (64: 32 a rank) from the same shuffled order as one process: the same run up to
    # round-off (here there is no augmentation, so the steps are the same mean gradients).
    single = quick_recipe("dense-ae")
    assert lines[0]["test_mse"] == pytest.approx(single.metrics["test_mse"], rel=0.10)
    assert len(sidecar["history"]["train_loss"]) == len(single.history["train_loss"])


def test_a_non_zero_rank_prints_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import coursekit.recipes
    from coursekit import cli
    from coursekit.models.autoencoders import dense_ae
    from coursekit.recipes import TrainResult

    def fake_train(name, **kwargs):
        return TrainResult(dense_ae(64, 4), {"in_features": 64, "code_size": 4}, {"test_mse": 0.5})

    monkeypatch.setattr(coursekit.recipes, "train_recipe", fake_train)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "1")  # what torchrun sets in the second process
    assert cli.main(["train", "dense-ae", "--quick", "--json", "--device", "cpu",
                     "--out", str(tmp_path / "x.pt")]) == 0
    assert capsys.readouterr() == ("", "") and list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RANK", "0")
    assert cli.main(["train", "dense-ae", "--quick", "--json", "--device", "cpu",
                     "--out", str(tmp_path / "x.pt")]) == 0
    assert _json_lines(capsys.readouterr().out) == [{"model": "dense-ae", "test_mse": 0.5}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "x.pt"]


@pytest.mark.gpu
def test_one_gpu_torchrun_matches_the_plain_run(tmp_path):
    args = ("unet", "--quick", "--json", "--device", "cuda", "--no-progress")
    plain = subprocess.run([sys.executable, "-m", "coursekit", "train", *args], capture_output=True, text=True,
                           cwd=tmp_path, env=_env(), timeout=300)
    assert plain.returncode == 0, plain.stderr[-2000:]
    out = _torchrun(1, *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (expected,), (got,) = _json_lines(plain.stdout), _json_lines(out.stdout)
    assert got["miou"] == pytest.approx(expected["miou"], abs=0.05)


@pytest.mark.gpu
def test_ddp_on_one_gpu_with_nccl_follows_the_plain_run(tmp_path):
    """fit's DDP path on CUDA (nccl, sharded batches on the GPU, buffers and metrics reduced) in a process
    group of one: the augmentation draws differ from the plain run's, the result is close."""
    script = (
        "import json, torch, torch.distributed as dist\n"
        "from coursekit.recipes import train_recipe\n"
        "dist.init_process_group('nccl', device_id=torch.device('cuda', 0))\n"
        "r = train_recipe('unet', quick=True, device='cuda:0')\n"
        "dist.destroy_process_group()\n"
        "print(json.dumps(r.metrics))\n")
    env = _env(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    ddp = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    plain = subprocess.run([sys.executable, "-m", "coursekit", "train", "unet", "--quick", "--json", "--device",
                            "cuda", "--no-progress"], capture_output=True, text=True, cwd=tmp_path, env=_env(),
                           timeout=300)
    assert plain.returncode == 0, plain.stderr[-2000:]
    got, (expected,) = _json_lines(ddp.stdout)[-1], _json_lines(plain.stdout)
    assert got["miou"] == pytest.approx(expected["miou"], abs=0.1)
