import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from coursekit import plot
from coursekit.data import load_digits_split, make_scene
from coursekit.train import History
from coursekit.widgets import knob_demo


def test_image_grid_reshapes_flat_vectors():
    x = load_digits_split(limit=10).x_train[:10]
    fig = plot.image_grid(x, ncols=5, titles=list(range(10)))
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 10 and axes[0].images[0].get_array().shape == (8, 8)
    assert np.allclose(axes[3].images[0].get_array(), x[3].view(8, 8).numpy())


def test_reconstructions_rows_per_model():
    x = torch.rand(6, 64)
    fig = plot.reconstructions(x, {"a": x * 0.5, "b": x}, n=4)
    assert len(fig.axes) == 12 and fig.axes[4].get_ylabel() == "a"


def test_training_curves_plot_every_key():
    h = History([{"train_loss": 1.0, "val_loss": 1.2}, {"train_loss": 0.5, "val_loss": 0.7}])
    fig = plot.training_curves({"ae": h})
    lines = fig.axes[0].get_lines()
    assert [tuple(l.get_ydata()) for l in lines] == [(1.0, 0.5), (1.2, 0.7)]


def test_mask_and_box_overlays_draw_what_they_are_given():
    s = make_scene(2)
    ax = plot.mask_overlay(s.image, s.semantic)
    overlay = ax.images[1].get_array()
    assert overlay.shape == (64, 64, 4) and np.array_equal(overlay[..., 3] > 0, (s.semantic > 0).numpy())
    ax = plot.box_overlay(s.image, s.boxes, s.labels, scores=torch.ones(len(s.labels)),
                          class_names=["bg", "circle", "square", "triangle"], masks=s.masks)
    assert len(ax.patches) == len(s.labels) and len(ax.texts) == len(s.labels)
    assert ax.texts[0].get_text().endswith("1.00")


def test_colour_mask_marks_ignore_white():
    m = torch.tensor([[0, 1], [255, 2]])
    rgb = plot.colour_mask(m)
    assert rgb.shape == (2, 2, 3) and np.all(rgb[1, 0] == 1.0) and np.all(rgb[0, 0] == 0.0)


def test_knob_demo_draws_every_value_then_returns_a_slider(monkeypatch):
    drawn = []
    shown = []
    monkeypatch.setattr("coursekit.widgets.display", lambda fig: shown.append(len(fig.axes)))

    def draw(value, ax):
        drawn.append(value)
        ax.plot([0, value])

    widget = knob_demo(draw, "k", [1, 2, 4])
    assert drawn[:3] == [1, 2, 4] and shown[0] == 3  # the static figure: one panel per value
    slider = widget.children[0]
    slider.value = 4
    assert drawn[-1] == 4  # moving the slider redraws live
    with pytest.raises(ValueError, match="at least one value"):
        knob_demo(draw, "k", [])
    plt.close("all")
