"""What the chapters display besides plots: interactive demos, and the package code they teach.

``knob_demo(draw, name, values)`` draws ``draw(value, ax)`` for every value side by side (the static
figure the built book shows), then returns a slider over the same values that redraws one panel live
when a kernel runs. Results are cached per value, so moving the slider is instant.

``show_source(obj, ...)`` displays the source of package functions, classes or methods with syntax
highlighting, so a chapter shows the very code it runs and cannot drift from it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import Code, display


def show_source(*objects: Any) -> None:
    """Display the source code of each object (a function, class or method of the package), highlighted."""
    display(Code("\n\n".join(inspect.getsource(obj).rstrip() for obj in objects), language="python"))


def knob_demo(draw: Callable[[Any, plt.Axes], None], name: str, values: Sequence, *,
              default=None, panel_size: float = 2.6, title: str | None = None) -> widgets.Widget:
    """Show the static small-multiples figure of ``draw`` over ``values``; return a live slider.

    ``draw(value, ax)`` must draw one panel for one knob setting (training or computing what it
    needs; cache inside it if that is slow).
    """
    values = list(values)
    if not values:
        raise ValueError("knob_demo needs at least one value")
    fig, axes = plt.subplots(1, len(values), figsize=(panel_size * len(values), panel_size), squeeze=False)
    for value, ax in zip(values, axes[0]):
        draw(value, ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    display(fig)
    plt.close(fig)

    out = widgets.Output()
    slider = widgets.SelectionSlider(options=values, value=default if default is not None else values[0],
                                     description=name, continuous_update=False)

    def redraw(change=None):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(panel_size * 1.4, panel_size * 1.4))
            draw(slider.value, ax)
            fig.tight_layout()
            display(fig)
            plt.close(fig)

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, out])
