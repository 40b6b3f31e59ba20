"""What the chapters display besides plots: slider demos, and the package code they teach.

``knob_demo(draw, name, values)`` draws ``draw(value, ax)`` for every value: side by side in one
figure, and one larger frame per value behind a slider. The frames are drawn while the chapter runs,
so the slider needs no kernel to move: in Jupyter it is an ipywidgets slider linked to a ``Stack`` of
images in the browser (``jslink``), and in the built book, which has no widget manager, the same output
carries a small self-contained HTML/JS player over the same frames (no script from outside the page).

``show_source(obj, ...)`` displays the source of package functions, classes or methods with syntax
highlighting, so a chapter shows the very code it runs and cannot drift from it.
"""

from __future__ import annotations

import base64
import html
import inspect
import io
import itertools
import json
from typing import Any, Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import Code, display

_players = itertools.count()  # distinct element ids for several players on one page


def show_source(*objects: Any) -> None:
    """Display the source code of each object (a function, class or method of the package), highlighted."""
    display(Code("\n\n".join(inspect.getsource(obj).rstrip() for obj in objects), language="python"))


def knob_demo(draw: Callable[[Any, plt.Axes], None], name: str, values: Sequence, *,
              default=None, panel_size: float = 2.6, title: str | None = None) -> None:
    """Show ``draw(value, ax)`` for every value side by side, then a slider that shows one at a time.

    ``draw`` must draw one panel for one knob setting (training or computing what it needs; cache
    inside it if that is slow). Each value's frame is drawn once, here, so moving the slider needs no
    kernel: see the module's docstring for the two forms the slider takes.
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

    frames = [_frame(draw, value, panel_size * 1.4) for value in values]
    start = values.index(default) if default in values else 0
    slider = widgets.SelectionSlider(options=values, index=start, description=name, continuous_update=True)
    stack = widgets.Stack([widgets.Image(value=png, format="png") for png in frames], selected_index=start)
    widgets.jslink((slider, "index"), (stack, "selected_index"))
    bundle = widgets.VBox([slider, stack])._repr_mimebundle_()
    bundle["text/html"] = player_html(name, [str(v) for v in values], frames, start)
    display(bundle, raw=True)


def _frame(draw: Callable[[Any, plt.Axes], None], value, size: float) -> bytes:
    """One PNG of ``draw(value, ax)`` on a square figure of ``size`` inches."""
    fig, ax = plt.subplots(figsize=(size, size))
    draw(value, ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def player_html(name: str, labels: Sequence[str], frames: Sequence[bytes], start: int = 0) -> str:
    """A slider over pre-drawn PNG ``frames`` as one self-contained piece of HTML (inline images and script).

    Moving the range input shows frame i and its label; nothing is fetched, nothing needs a kernel.
    """
    if len(labels) != len(frames) or not frames:
        raise ValueError(f"{len(labels)} labels for {len(frames)} frames")
    uid = f"coursekit-knob-{next(_players)}"
    images = "".join(
        f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{html.escape(name)} = '
        f'{html.escape(label)}" style="max-width:100%;display:{"block" if i == start else "none"}">'
        for i, (label, png) in enumerate(zip(labels, frames)))
    return (f'<div class="coursekit-knob" id="{uid}">'
            f'<label>{html.escape(name)} <input type="range" min="0" max="{len(frames) - 1}" step="1" '
            f'value="{start}" aria-label="{html.escape(name)}" style="vertical-align:middle">'
            f" <output>{html.escape(labels[start])}</output></label><div>{images}</div></div>"
            "<script>(function () {"
            f"var root = document.getElementById({json.dumps(uid)}), labels = {json.dumps(list(labels))};"
            'var slider = root.querySelector("input"), shown = root.querySelector("output"),'
            ' frames = root.querySelectorAll("img");'
            'slider.addEventListener("input", function () {'
            "for (var i = 0; i < frames.length; i++) {"
            'frames[i].style.display = i == slider.value ? "block" : "none"; }'
            "shown.textContent = labels[slider.value]; }); })();</script>")
