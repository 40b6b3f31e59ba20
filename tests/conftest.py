"""Shared test set-up: quick mode, a non-interactive matplotlib, the ``gpu`` marker, quick recipe runs."""

import os

import matplotlib
import pytest
import torch

os.environ.setdefault("COURSEKIT_QUICK", "1")
os.environ.pop("COURSEKIT_DATA", None)  # the tests choose their data themselves (tests/test_real_data.py)
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


@pytest.fixture(scope="session")
def quick_recipe():
    """``quick_recipe(name, **options)``: ``train_recipe(name, quick=True, device="cpu", **options)``, trained once
    per session for each name and options (the tests read the result; none may train it further)."""
    from coursekit.recipes import train_recipe

    results = {}

    def train(name, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in results:
            results[key] = train_recipe(name, quick=True, device="cpu", **options)
        return results[key]

    return train
