import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from coursekit.device import seed_everything
from coursekit.train import CheckpointError, History, fit, load_checkpoint, save_checkpoint, to_device


def _regression_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=False)


def mse_loss(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def test_fit_learns_and_records_history():
    seed_everything(0)
    model = nn.Linear(3, 1)
    loader = _regression_data()
    history = fit(model, loader, mse_loss, epochs=30, lr=0.05, val_loader=loader,
                  metrics=lambda m, l: {"w0": m.weight[0, 0]}, device="cpu", progress=False)
    assert isinstance(history, History)
    assert len(history["train_loss"]) == 30 and len(history["val_loss"]) == 30
    assert history["train_loss"][-1] < 0.01 * history["train_loss"][0]
    assert history.last["w0"] == pytest.approx(1.0, abs=0.05)
    assert set(history.keys()) >= {"epoch", "train_loss", "val_loss", "w0", "lr", "seconds"}
    assert not model.training  # fit leaves the model in eval mode


def test_fit_is_repeatable_on_cpu():
    def run():
        seed_everything(1)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        return fit(model, _regression_data(), mse_loss, epochs=2, device="cpu", progress=False)["train_loss"]
    assert run() == run()


def test_non_finite_loss_stops_with_a_message():
    model = nn.Linear(3, 1)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, _regression_data(), lambda m, b: m(b[0]).sum() * float("nan"), epochs=1,
            device="cpu", progress=False)


def test_to_device_walks_nested_containers():
    batch = ([torch.zeros(1)], {"a": torch.ones(2), "b": "text"})
    moved = to_device(batch, torch.device("cpu"))
    assert isinstance(moved, tuple) and moved[1]["b"] == "text" and torch.equal(moved[1]["a"], torch.ones(2))


def _saved(tmp_path):
    model = nn.Linear(3, 2)
    path = save_checkpoint(tmp_path / "m.pt", model, name="toy", config={"in": 3, "out": 2}, seed=7,
                           metrics={"test_mse": 0.25}, command="coursekit train toy --seed 7")
    return model, path


def test_checkpoint_roundtrip_and_sidecar(tmp_path):
    model, path = _saved(tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["command"] == "coursekit train toy --seed 7" and meta["seed"] == 7
    assert meta["metrics"] == {"test_mse": 0.25} and "torch" in meta["versions"]
    fresh = nn.Linear(3, 2)
    loaded = load_checkpoint(path, fresh, expect_name="toy")
    assert loaded["config"] == {"in": 3, "out": 2}
    assert torch.equal(fresh.weight, model.weight)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pt", nn.Linear(3, 2))


def test_corrupt_checkpoint_is_detected(tmp_path):
    _, path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path, nn.Linear(3, 2))


def test_mismatched_checkpoint_names_the_parameter(tmp_path):
    _, path = _saved(tmp_path)
    with pytest.raises(CheckpointError, match=r"shape mismatch weight: file \(2, 3\) vs model \(4, 3\)"):
        load_checkpoint(path, nn.Linear(3, 4))
    with pytest.raises(CheckpointError, match="is for model 'toy', not 'other'"):
        load_checkpoint(path, nn.Linear(3, 2), expect_name="other")


def test_missing_or_broken_sidecar(tmp_path):
    _, path = _saved(tmp_path)
    side = path.with_suffix(".json")
    side.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path, nn.Linear(3, 2))
    side.unlink()
    with pytest.raises(CheckpointError, match="sidecar missing"):
        load_checkpoint(path, nn.Linear(3, 2))


@pytest.mark.gpu
def test_fit_on_cuda_with_mixed_precision():
    seed_everything(0)
    model = nn.Linear(3, 1)
    history = fit(model, _regression_data(), mse_loss, epochs=20, lr=0.05, device="cuda", amp=True,
                  progress=False)
    assert next(model.parameters()).device.type == "cuda"
    assert history["train_loss"][-1] < 0.05 * history["train_loss"][0]
