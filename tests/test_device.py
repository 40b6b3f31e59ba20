import random

import numpy as np
import pytest
import torch

from coursekit import device
from coursekit.errors import UsageError


def test_env_overrides_the_device(monkeypatch):
    monkeypatch.setenv(device.DEVICE_ENV, "cpu")
    assert device.get_device() == torch.device("cpu")


def test_auto_prefers_cuda_when_present(monkeypatch):
    monkeypatch.delenv(device.DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert device.get_device().type == expected
    assert device.get_device("auto").type == expected


def test_unknown_device_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown device 'gpu0'"):
        device.get_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_usage_error_that_names_it():
    with pytest.raises(UsageError, match="CUDA is not available"):
        device.get_device("cuda")


def test_seeding_makes_runs_repeatable():
    device.seed_everything(3)
    a = torch.randn(5), torch.nn.Linear(4, 2).weight.detach().clone()
    device.seed_everything(3)
    b = torch.randn(5), torch.nn.Linear(4, 2).weight.detach().clone()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    device.seed_everything(4)
    assert not torch.equal(torch.randn(5), a[0])


def _draws():
    """One number from each generator ``seeded`` manages: Python's, NumPy's and torch's."""
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seeded_leaves_the_callers_random_streams_as_they_were():
    device.seed_everything(5)
    expected = _draws()
    device.seed_everything(5)
    with device.seeded(123):
        _draws()
    assert _draws() == expected


def test_seeded_blocks_repeat_as_after_seed_everything():
    with device.seeded(7):
        first = _draws()
    with device.seeded(7):
        second = _draws()
    device.seed_everything(7)
    assert first == second == _draws()


def test_seeded_restores_the_state_when_the_block_fails():
    device.seed_everything(5)
    expected = _draws()
    device.seed_everything(5)
    with pytest.raises(KeyError), device.seeded(1):
        raise KeyError("inside the block")
    assert _draws() == expected


@pytest.mark.parametrize("value, quick", [("1", True), ("true", True), ("yes", True), ("0", False), ("", False)])
def test_quick_mode_and_budget(monkeypatch, value, quick):
    monkeypatch.setenv(device.QUICK_ENV, value)
    assert device.quick_mode() is quick
    assert device.budget(full=100, quick=2) == (2 if quick else 100)


@pytest.mark.gpu
def test_cuda_is_picked_and_computes_what_the_cpu_does(monkeypatch):
    monkeypatch.delenv(device.DEVICE_ENV, raising=False)
    assert device.get_device().type == "cuda"
    x = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    on_cuda = (x.cuda() @ x.cuda().T).cpu()
    # float32 on both; cuBLAS may sum in another order (or in TF32 where enabled): |x·x| ~ 16, so 1e-2
    torch.testing.assert_close(on_cuda, x @ x.T, rtol=1e-3, atol=1e-2)


@pytest.mark.gpu
def test_seeded_restores_the_cuda_stream():
    torch.cuda.manual_seed(5)
    expected = torch.rand(4, device="cuda").cpu()
    torch.cuda.manual_seed(5)
    with device.seeded(1):
        torch.rand(4, device="cuda")
    assert torch.equal(torch.rand(4, device="cuda").cpu(), expected)
