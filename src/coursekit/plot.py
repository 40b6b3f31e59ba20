"""Figures the chapters share: image grids, reconstructions, training curves, mask and box overlays,
segmentation mosaics, the segmentation results table and the spread of recorded runs over seeds."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colors as mcolors

# One colour per class id; index 0 (background) is transparent in overlays.
CLASS_COLOURS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48],
                          [145, 30, 180], [70, 240, 240], [240, 50, 230]]) / 255.0


def _as_image(x: torch.Tensor | np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A (H, W) or (H, W, 3) array from a flat vector, (1, H, W), (3, H, W) or (H, W) tensor."""
    x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    if shape is not None:
        x = x.reshape(shape)
    elif x.ndim == 1:
        side = int(round(np.sqrt(x.size)))
        x = x.reshape(side, side)
    if x.ndim == 3:
        x = x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))
    return x


def image_grid(images: Sequence, ncols: int = 8, titles: Sequence[str] | None = None,
               shape: tuple[int, ...] | None = None, cmap: str = "gray", scale: float = 1.2,
               suptitle: str | None = None) -> plt.Figure:
    """Show images in a grid (flat vectors are reshaped to squares, or to ``shape``)."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_as_image(images[i], shape), cmap=cmap, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def reconstructions(originals: Sequence, recons: Sequence | dict[str, Sequence], n: int = 8,
                    shape: tuple[int, ...] | None = None, scale: float = 1.1) -> plt.Figure:
    """Originals in the first row, one row of reconstructions per model (``recons`` may be a dict)."""
    rows = {"input": originals}
    rows.update(recons if isinstance(recons, dict) else {"reconstruction": recons})
    n = min(n, len(originals))
    fig, axes = plt.subplots(len(rows), n, figsize=(scale * n, scale * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(_as_image(images[c], shape), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return fig


def training_curves(histories, keys: Sequence[str] = ("train_loss", "val_loss"),
                    logy: bool = False, ax: plt.Axes | None = None) -> plt.Figure:
    """Plot ``keys`` of one ``coursekit.engine.History`` or of several (a dict name -> History) against the epoch."""
    if not isinstance(histories, dict):
        histories = {"": histories}
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
    else:
        fig = ax.figure
    for name, history in histories.items():
        for key in keys:
            values = history[key]
            if values:
                label = f"{name} {key}".strip()
                ax.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 15 else None,
                        label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(", ".join(keys) if len(keys) == 1 else "value")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def colour_mask(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """An (H, W, 3) RGB picture of a class-id mask (255 = ignore, drawn white)."""
    m = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    out = CLASS_COLOURS[np.clip(m, 0, len(CLASS_COLOURS) - 1)]
    out[m == 255] = 1.0
    return out


def mask_overlay(image: torch.Tensor, mask: torch.Tensor, ax: plt.Axes | None = None,
                 alpha: float = 0.5, title: str | None = None) -> plt.Axes:
    """Draw ``image`` with its class-id ``mask`` blended on top (background left clear)."""
    ax = ax or plt.subplots(figsize=(3, 3))[1]
    img = _as_image(image)
    m = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    rgba = np.concatenate([colour_mask(m), (alpha * (m > 0))[..., None]], axis=-1)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax.imshow(rgba)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def box_overlay(image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor | None = None,
                scores: torch.Tensor | None = None, class_names: Sequence[str] | None = None,
                masks: torch.Tensor | None = None, ax: plt.Axes | None = None,
                title: str | None = None) -> plt.Axes:
    """Draw ``image`` with boxes (x1, y1, x2, y2), optional labels, scores and instance masks."""
    ax = ax or plt.subplots(figsize=(3, 3))[1]
    ax.imshow(_as_image(image))
    if masks is not None:
        for k, m in enumerate(masks):  # one colour per instance, so touching objects stay apart
            m = (m.float() > 0.5).cpu().numpy()
            colour = mcolors.to_rgba(CLASS_COLOURS[1 + k % (len(CLASS_COLOURS) - 1)], 0.45)
            ax.imshow(np.where(m[..., None], np.array(colour), 0.0))
    for k, box in enumerate(boxes.detach().cpu().tolist()):
        label = int(labels[k]) if labels is not None else 1
        colour = CLASS_COLOURS[label % len(CLASS_COLOURS)]
        x1, y1, x2, y2 = box
        ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=1.5, ec=colour))
        text = class_names[label] if class_names is not None else str(label)
        if scores is not None:
            text += f" {float(scores[k]):.2f}"
        ax.text(x1 - 0.5, y1 - 1, text, color="white", fontsize=6, va="bottom",
                bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "lw": 0})
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


@dataclass(frozen=True)
class Column:
    """One column of a ``Table``: the row key it shows, its header, a format, and which end is best
    (``"max"``, ``"min"`` or ``None``: no value is marked)."""

    key: str
    header: str
    fmt: str = "{:.3f}"
    best: str | None = "max"


class Table:
    """A results table: HTML in a notebook and in the built book, plain text anywhere else (``str``).

    ``rows`` maps a row name (a model, a setting) to its values. In HTML the best value of every column
    that has a ``best`` end is bold, numbers are right-aligned and never wrap, and a wide table scrolls
    sideways instead of overflowing a narrow page.
    """

    def __init__(self, rows: dict[str, dict], columns: Sequence[Column], index: str = "model"):
        missing = sorted({c.key for c in columns} - {k for r in rows.values() for k in r})
        if missing:
            raise ValueError(f"no row has the column(s) {missing}")
        self.rows, self.columns, self.index = rows, list(columns), index

    def _cells(self) -> list[list[str]]:
        return [[c.fmt.format(r[c.key]) if c.key in r else "" for c in self.columns] for r in self.rows.values()]

    def _best(self) -> list[set[int]]:
        """Per column, the row numbers that hold its best value."""
        marks = []
        for c in self.columns:
            values = [(i, r[c.key]) for i, r in enumerate(self.rows.values())
                      if c.key in r and isinstance(r[c.key], (int, float)) and r[c.key] == r[c.key]]
            if c.best not in ("max", "min") or not values:
                marks.append(set())
                continue
            top = (max if c.best == "max" else min)(v for _, v in values)
            marks.append({i for i, v in values if v == top})
        return marks

    def _repr_html_(self) -> str:
        best = self._best()
        head = "".join(f'<th style="text-align:right">{html.escape(c.header)}</th>' for c in self.columns)
        body = []
        for i, (name, cells) in enumerate(zip(self.rows, self._cells())):
            tds = "".join(f'<td style="text-align:right;white-space:nowrap">'
                          f'{f"<strong>{v}</strong>" if i in best[j] else v}</td>' for j, v in enumerate(cells))
            body.append(f'<tr><th style="white-space:nowrap">{html.escape(str(name))}</th>{tds}</tr>')
        return ('<div style="overflow-x:auto"><table class="table coursekit-table">'
                f"<thead><tr><th>{html.escape(self.index)}</th>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table></div>")

    def __str__(self) -> str:
        grid = [[self.index, *(c.header for c in self.columns)]]
        grid += [[str(name), *cells] for name, cells in zip(self.rows, self._cells())]
        widths = [max(len(row[j]) for row in grid) for j in range(len(grid[0]))]
        lines = ["  ".join(v.ljust(w) if j == 0 else v.rjust(w) for j, (v, w) in enumerate(zip(row, widths)))
                 for row in grid]
        return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])

    __repr__ = __str__


def format_results(results: dict[str, dict[str, float]]) -> Table:
    """The segmentation results table, one row per model: parameters, training seconds, pixel accuracy,
    mIoU, Dice and the IoU of each class (keys as ``coursekit.engine.train_and_test`` returns them: the
    ``iou_<class>`` keys, in their order, give the class columns, so any dataset's classes show)."""
    classes = dict.fromkeys(k[len("iou_"):] for r in results.values() for k in r if k.startswith("iou_"))
    return Table(results, [Column("params", "params", "{:,d}", "min"), Column("seconds", "train s", "{:.1f}", "min"),
                           Column("pixel_accuracy", "pixel acc"), Column("miou", "mIoU"), Column("dice", "Dice"),
                           *(Column(f"iou_{c}", f"IoU {c}") for c in classes)])


def seed_spread(values: dict[str, Sequence[float]], ylabel: str, title: str | None = None,
                higher_is_better: bool | None = None, width: float = 1.1) -> plt.Figure:
    """Recorded runs over seeds, one column per arm: every seed's value as a dot, mean ± std as a bar.

    ``values`` maps an arm's label to its per-seed values (``bench.Record.values``). Two arms whose bars
    overlap are within noise of each other.
    """
    fig, ax = plt.subplots(figsize=(0.8 + width * len(values), 3.0))
    for i, (label, v) in enumerate(values.items()):
        v = np.asarray(v, dtype=float)
        jitter = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
        ax.scatter(i + 0.18 + jitter, v, s=14, color="0.55", zorder=2, label="one seed" if i == 0 else None)
        std = v.std(ddof=1) if len(v) > 1 else 0.0
        ax.errorbar(i - 0.12, v.mean(), yerr=std, fmt="o", color="C0", capsize=5, lw=2, zorder=3,
                    label="mean ± std" if i == 0 else None)
    long = max(len(label) for label in values) * len(values) > 60  # rotate labels that would collide
    ax.set_xticks(range(len(values)), list(values), rotation=25 if long else 0, ha="right" if long else "center",
                  fontsize=8 if long else None)
    ax.set_xlim(-0.6, len(values) - 0.4)
    arrow = {True: " (higher is better)", False: " (lower is better)", None: ""}[higher_is_better]
    ax.set_ylabel(ylabel + arrow)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def mosaic(image: torch.Tensor, masks: list[torch.Tensor], ncols: int | None = None, gap: int = 2) -> np.ndarray:
    """One RGB picture: the image, then each class-id mask in the class colours, in a grid of
    ``ncols`` columns (default: one row), row by row, white gaps between panels."""
    panels = [image.permute(1, 2, 0).cpu().numpy()] + [colour_mask(m) for m in masks]
    ncols = ncols or len(panels)
    height, width = panels[0].shape[:2]
    nrows = -(-len(panels) // ncols)
    out = np.ones((nrows * (height + gap) - gap, ncols * (width + gap) - gap, 3))
    for k, p in enumerate(panels):
        r, c = divmod(k, ncols)
        out[r * (height + gap):r * (height + gap) + height, c * (width + gap):c * (width + gap) + width] = p
    return out


def scene_drawer(images: torch.Tensor, masks: torch.Tensor, predictions: dict[str, torch.Tensor], *,
                 ncols: int) -> Callable:
    """``draw(index, ax)`` for ``coursekit.widgets.knob_demo``: scene ``index`` as one ``mosaic`` of the
    image, its true mask and each model's predicted mask (``predictions[name]`` is (N, H, W), computed
    once for every scene, e.g. by ``coursekit.engine.predict``)."""
    def draw(index: int, ax) -> None:
        panels = [masks[index]] + [p[index] for p in predictions.values()]
        ax.imshow(mosaic(images[index], panels, ncols=ncols), interpolation="nearest")
        ax.set_title(f"scene {index}: truth, " + ", ".join(predictions), fontsize=8)
        ax.axis("off")

    return draw


def show_predictions(images: torch.Tensor, columns: dict[str, torch.Tensor], panel: float = 1.6):
    """A grid: one row per image, first column the image, then one column per named mask set
    (e.g. ``{"truth": y, "FCN-8s": pred}``). Returns the figure."""
    n, names = len(images), ["image", *columns]
    fig, axes = plt.subplots(n, len(names), figsize=(panel * len(names), panel * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i].permute(1, 2, 0).cpu().numpy())
        for j, masks in enumerate(columns.values(), start=1):
            axes[i, j].imshow(colour_mask(masks[i]), interpolation="nearest")
    for j, name in enumerate(names):
        axes[0, j].set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def filter_mosaics(weights: dict[str, torch.Tensor | np.ndarray], shape: tuple[int, int] | None = None,
                   ncols: int = 8, unused: torch.Tensor | np.ndarray | None = None, gap: int = 1, panel: float = 3.2,
                   background: tuple[float, float, float] = (0.62, 0.75, 0.88)) -> plt.Figure:
    """Encoder filters side by side, one panel per model, as Vincent et al. (2008) show them.

    ``weights[name]`` is a (k, n) weight matrix (``nn.Linear`` storage: row j feeds code unit j); each row
    becomes a ``shape`` tile (square by default: 8×8 for n = 64, 28×28 for n = 784), the tiles ``ncols``
    to a row with ``gap`` pixels of ``background`` between them. A tile is divided by its largest
    |weight|, so 0 is mid-grey, the strongest positive weight white and the strongest negative black.
    ``unused`` marks inputs whose weights cannot matter (pixels that are constant over the training set):
    they are left out of the scaling and drawn in ``background``.
    """
    h, w = shape or (math.isqrt(next(iter(weights.values())).shape[1]),) * 2
    nrows = -(-max(len(W) for W in weights.values()) // ncols)
    height = panel * (nrows * (h + gap) + gap) / (ncols * (w + gap) + gap) + 0.35
    fig, axes = plt.subplots(1, len(weights), figsize=(panel * len(weights), height), squeeze=False)
    for ax, (name, W) in zip(axes[0], weights.items()):
        W = W.detach().float().cpu().numpy() if isinstance(W, torch.Tensor) else np.asarray(W, dtype=float)
        used = np.ones(W.shape[1], bool) if unused is None else ~np.asarray(unused, dtype=bool).reshape(-1)
        peak = np.abs(W[:, used]).max(1, keepdims=True)
        tiles = np.repeat((0.5 + 0.5 * W / np.where(peak > 0, peak, 1.0))[..., None], 3, axis=-1)
        tiles[:, ~used] = background
        out = np.empty((nrows * (h + gap) + gap, ncols * (w + gap) + gap, 3))
        out[:] = background
        for k, tile in enumerate(tiles.reshape(len(W), h, w, 3)):
            r, c = divmod(k, ncols)
            out[gap + r * (h + gap):gap + r * (h + gap) + h, gap + c * (w + gap):gap + c * (w + gap) + w] = tile
        ax.imshow(out, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig

