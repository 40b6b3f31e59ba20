"""The training loop (``coursekit.engine.fit``) and checkpoints (``coursekit.checkpoint``)."""

import copy
import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from coursekit.checkpoint import CHECKPOINTS_ENV, load_checkpoint, load_trained, save_checkpoint
from coursekit.device import seed_everything
from coursekit.engine import History, fit, to_device
from coursekit.engine.fit import to_channels_last
from coursekit.errors import CheckpointError
from coursekit.models.autoencoders import dense_ae


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


def test_to_device_moves_every_tensor_and_keeps_the_structure():
    # "meta" is a device every machine has and no tensor starts on: a to_device that moved nothing
    # (or missed a nested tensor) leaves something on the CPU.
    batch = ([torch.zeros(1)], {"a": torch.ones(2, dtype=torch.float64), "b": "text"})
    moved = to_device(batch, torch.device("meta"))
    assert isinstance(moved, tuple) and isinstance(moved[0], list) and moved[1]["b"] == "text"
    assert [t.device.type for t in (moved[0][0], moved[1]["a"])] == ["meta", "meta"]
    assert moved[1]["a"].dtype == torch.float64 and moved[1]["a"].shape == (2,)


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


# --- load_trained: the model rebuilt from its sidecar -----------------------------------------------------

def _save_dense_ae(folder, name="dense"):
    torch.manual_seed(0)
    model = dense_ae(64, 8)
    save_checkpoint(folder / f"{name}.pt", model, name="dense-ae", builder="dense_ae",
                    config={"in_features": 64, "code_size": 8}, seed=0, metrics={"test_mse": 0.01})
    return model


def _same_outputs(a, b):
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b(x))


def test_load_trained_by_name_looks_in_the_checkpoints_folder(tmp_path, monkeypatch):
    original = _save_dense_ae(tmp_path)
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path))
    model, record = load_trained("dense")
    assert record["name"] == "dense-ae" and record["builder"] == "dense_ae"
    assert not model.training and _same_outputs(original, model)


@pytest.mark.parametrize("as_text", [False, True])
def test_load_trained_by_path(tmp_path, as_text):
    original = _save_dense_ae(tmp_path)
    path = tmp_path / "dense.pt"
    model, _ = load_trained(str(path) if as_text else path)
    assert _same_outputs(original, model)


def test_load_trained_refuses_an_unknown_builder(tmp_path):
    _save_dense_ae(tmp_path)
    side = tmp_path / "dense.json"
    side.write_text(json.dumps({**json.loads(side.read_text()), "builder": "resnet"}))
    with pytest.raises(CheckpointError, match=r"dense\.json: sidecar names no known builder \('resnet'\)"):
        load_trained(tmp_path / "dense.pt")


def test_load_trained_names_a_missing_file_and_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path))
    with pytest.raises(CheckpointError, match=r"nope\.pt: checkpoint file not found \(no nope\.pt in "):
        load_trained("nope")
    with pytest.raises(CheckpointError, match=r"other\.pt: checkpoint file not found"):
        load_trained(tmp_path / "other.pt")


# --- CUDA -------------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_fit_with_mixed_precision_on_cuda_follows_the_cpu_run():
    """The same model, data and steps on CPU (float32) and CUDA (bfloat16 autocast)."""
    seed_everything(0)
    cpu_model = nn.Linear(3, 1)
    cuda_model = copy.deepcopy(cpu_model)
    runs = {device: fit(model, _regression_data(), mse_loss, epochs=20, lr=0.05, device=device, amp=True,
                        progress=False)["train_loss"]
            for device, model in (("cpu", cpu_model), ("cuda", cuda_model))}
    assert next(cuda_model.parameters()).device.type == "cuda"
    # bfloat16 keeps 8 bits of mantissa (about 0.4 % per product): loose tolerances
    torch.testing.assert_close(cuda_model.weight.detach().cpu(), cpu_model.weight.detach(), rtol=0, atol=2e-2)
    torch.testing.assert_close(torch.tensor(runs["cuda"][:5]), torch.tensor(runs["cpu"][:5]), rtol=5e-2, atol=1e-3)


def test_channels_last_trains_the_same_model_in_another_layout():
    """fit's channels_last (the default with bf16 on CUDA) changes how tensors are stored, not what is learned."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 3, 8, 8, generator=g), torch.rand(32, 2, 8, 8, generator=g)

    def run(channels_last):
        seed_everything(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
        seen = []

        def loss_fn(m, batch):
            seen.append(batch[0].is_contiguous(memory_format=torch.channels_last))
            return nn.functional.mse_loss(m(batch[0]), batch[1])

        history = fit(model, DataLoader(TensorDataset(x, y), batch_size=8), loss_fn, epochs=3, lr=1e-2,
                      device="cpu", channels_last=channels_last, progress=False)
        return model, history["train_loss"], seen

    model_nhwc, losses_nhwc, seen_nhwc = run(True)
    model_nchw, losses_nchw, seen_nchw = run(False)
    assert all(seen_nhwc) and not any(seen_nchw)
    assert model_nhwc[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert losses_nhwc == pytest.approx(losses_nchw, rel=1e-5)
    torch.testing.assert_close(model_nhwc[0].weight, model_nchw[0].weight, rtol=1e-4, atol=1e-6)


def test_to_channels_last_reorders_images_only():
    batch = {"images": torch.rand(2, 3, 4, 5), "masks": torch.zeros(2, 4, 5, dtype=torch.long), "names": ["a"]}
    moved = to_channels_last(batch)
    assert moved["images"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(moved["images"], batch["images"]) and moved["masks"] is batch["masks"]
    assert moved["names"] == ["a"]
