import pytest
import torch

from coursekit import device


def test_env_overrides_the_device(monkeypatch):
    monkeypatch.setenv(device.DEVICE_ENV, "cpu")
    assert device.get_device() == torch.device("cpu")


def test_auto_prefers_cuda_when_present(monkeypatch):
    monkeypatch.delenv(device.DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert device.get_device().type == expected
    assert device.get_device("auto").type == expected


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        device.get_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_named():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        device.get_device("cuda")


def test_seeding_makes_runs_repeatable():
    device.seed_everything(3)
    a = torch.randn(5), torch.nn.Linear(4, 2).weight.detach().clone()
    device.seed_everything(3)
    b = torch.randn(5), torch.nn.Linear(4, 2).weight.detach().clone()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    device.seed_everything(4)
    assert not torch.equal(torch.randn(5), a[0])


@pytest.mark.parametrize("value, quick", [("1", True), ("true", True), ("yes", True), ("0", False), ("", False)])
def test_quick_mode_and_budget(monkeypatch, value, quick):
    monkeypatch.setenv(device.QUICK_ENV, value)
    assert device.quick_mode() is quick
    assert device.budget(full=100, quick=2) == (2 if quick else 100)


@pytest.mark.gpu
def test_cuda_is_picked_and_computes():
    assert device.get_device().type == "cuda"
    x = torch.randn(256, 256, device="cuda")
    assert torch.allclose((x @ x.T).cpu(), x.cpu() @ x.cpu().T, atol=1e-2)
