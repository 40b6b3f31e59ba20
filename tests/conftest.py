"""Shared test set-up: quick mode, a non-interactive matplotlib, and the ``gpu`` marker."""

import os

import matplotlib
import pytest
import torch

os.environ.setdefault("COURSEKIT_QUICK", "1")
matplotlib.use("Agg")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
