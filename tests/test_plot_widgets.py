import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from coursekit import plot
from coursekit.data import load_digits_split, make_scene
from coursekit.engine import History
from coursekit.widgets import knob_demo, player_html


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


def test_knob_demo_draws_every_value_and_a_slider_that_needs_no_kernel(monkeypatch):
    shown = []
    monkeypatch.setattr("coursekit.widgets.display", lambda obj, raw=False: shown.append(obj))
    drawn = []

    def draw(value, ax):
        drawn.append(value)
        ax.plot([0, value])

    assert knob_demo(draw, "k", [1, 2, 4], default=2) is None
    assert drawn == [1, 2, 4, 1, 2, 4]  # the side-by-side figure, then one frame per value
    figure, bundle = shown
    assert len(figure.axes) == 3
    assert "application/vnd.jupyter.widget-view+json" in bundle  # Jupyter: ipywidgets, linked in the browser
    page = bundle["text/html"]  # the built book: a self-contained player over the same frames
    frames = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(frames) == 3 and len(set(frames)) == 3
    assert 'type="range"' in page and 'value="1"' in page and "<script>" in page
    assert "http" not in page  # nothing is fetched
    with pytest.raises(ValueError, match="at least one value"):
        knob_demo(draw, "k", [])
    plt.close("all")


def test_player_html_needs_a_label_per_frame():
    with pytest.raises(ValueError, match="2 labels for 1 frames"):
        player_html("k", ["a", "b"], [b"png"])


def test_neighbour_correlation_tells_smooth_filters_from_speckle():
    """A ramp's neighbours correlate perfectly, independent noise's hardly; unused inputs are left out."""
    import numpy as np

    from coursekit.metrics.filters import neighbour_correlation

    ramp = np.add.outer(np.arange(8.0), np.arange(8.0)).reshape(1, 64).repeat(3, 0) * np.array([[1.0], [2.0], [-1.0]])
    assert neighbour_correlation(ramp) == pytest.approx(1.0)
    noise = np.random.default_rng(0).standard_normal((200, 64))
    assert abs(neighbour_correlation(noise)) < 0.05
    spoilt = ramp.copy()
    spoilt[:, 0] = 100.0  # one wild corner pixel: flagged unused, it changes nothing
    unused = np.zeros(64, bool)
    unused[0] = True
    assert neighbour_correlation(spoilt) < 0.99 and neighbour_correlation(spoilt, unused=unused) == pytest.approx(1.0)
