"""Figures the chapters share: image grids, reconstructions, training curves, mask and box overlays."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colors as mcolors

from coursekit.train import History

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


def training_curves(histories: History | dict[str, History], keys: Sequence[str] = ("train_loss", "val_loss"),
                    logy: bool = False, ax: plt.Axes | None = None) -> plt.Figure:
    """Plot ``keys`` of one ``History`` or of several (a dict name -> History) against the epoch."""
    if isinstance(histories, History):
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
