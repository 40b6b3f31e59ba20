"""``shapes``: synthetic scenes for segmentation and detection, deterministic from a seed.

A scene is a textured, noisy, low-saturation background with up to ``max_objects`` saturated
shapes (circle, square, triangle) of random size, rotation and colour. Shapes may overlap; a later
shape hides an earlier one, and a placement that would hide more than half of an earlier shape is
retried, so every instance stays visible. Colour says nothing about class: only geometry does.

Each scene gives the image, its semantic mask (0 = background, then one id per class), the visible
instance masks, their boxes (``x1, y1, x2, y2`` in pixel edges, so a one-pixel-wide mask has width
1) and their labels (1..3, as torchvision's detectors expect; 0 is background).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from coursekit.data.digits import Split, stack_pairs

CLASSES = ("background", "circle", "square", "triangle")


@dataclass
class Scene:
    """One scene: ``image`` (3, H, W) float in [0, 1], ``semantic`` (H, W) long, ``masks`` (K, H, W)
    bool, ``boxes`` (K, 4) float, ``labels`` (K,) long."""

    image: torch.Tensor
    semantic: torch.Tensor
    masks: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor


def _background(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Grey-ish texture: a few random plane waves around a random grey level."""
    base = rng.uniform(0.3, 0.7)
    tex = np.zeros((size, size))
    for _ in range(3):
        angle, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4), rng.uniform(0, 2 * np.pi)
        tex += rng.uniform(0.03, 0.1) * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    tint = rng.uniform(-0.05, 0.05, size=3)
    return np.clip(base + tex[None] + tint[:, None, None], 0, 1)


def _shape_mask(kind: int, cx: float, cy: float, r: float, angle: float,
                yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Boolean mask of one shape of class ``kind`` centred at (cx, cy) with radius ``r``."""
    u = np.cos(angle) * (xx - cx) + np.sin(angle) * (yy - cy)
    v = -np.sin(angle) * (xx - cx) + np.cos(angle) * (yy - cy)
    if kind == 1:  # circle
        return u ** 2 + v ** 2 <= r ** 2
    if kind == 2:  # square, half-side r / sqrt(2) so its area is close to the circle's
        h = r * 0.85
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    # equilateral triangle with circumradius 1.25 r: inside all three edges' half-planes
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        theta = angle + 2 * np.pi * k / 3
        inside &= np.cos(theta) * (xx - cx) + np.sin(theta) * (yy - cy) <= 0.625 * r
    return inside


def make_scene(seed: int | np.random.Generator, size: int = 64, max_objects: int = 4,
               min_objects: int = 1, noise: float = 0.04) -> Scene:
    """Generate one scene; the same ``seed`` always gives the same scene."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if not 1 <= min_objects <= max_objects:
        raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    image = _background(rng, size, yy, xx)
    full: list[np.ndarray] = []     # each instance's whole shape
    visible: list[np.ndarray] = []  # what is left of it after later shapes
    labels: list[int] = []
    for _ in range(rng.integers(min_objects, max_objects + 1)):
        for _attempt in range(20):
            kind = int(rng.integers(1, len(CLASSES)))
            r = rng.uniform(0.09, 0.2) * size
            cx, cy = rng.uniform(r, size - r, size=2)
            mask = _shape_mask(kind, cx, cy, r, rng.uniform(0, 2 * np.pi), yy, xx)
            if all((v & ~mask).sum() >= 0.5 * f.sum() for v, f in zip(visible, full)):
                break
        else:
            continue
        visible = [v & ~mask for v in visible]
        full.append(mask)
        visible.append(mask.copy())
        labels.append(kind)
        hsv_colour = np.array([rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0)])
        shade = 1 - 0.15 * (yy - cy) / size  # a little lighting so fills are not flat
        image[:, mask] = (_hsv_to_rgb(hsv_colour)[:, None] * shade[mask][None]).clip(0, 1)
    image = np.clip(image + rng.normal(0, noise, size=image.shape), 0, 1)
    semantic = np.zeros((size, size), dtype=np.int64)
    for v, label in zip(visible, labels):
        semantic[v] = label
    masks = np.stack(visible) if visible else np.zeros((0, size, size), dtype=bool)
    boxes = np.array([_box(v) for v in visible], dtype=np.float32).reshape(-1, 4)
    return Scene(image=torch.from_numpy(image.astype(np.float32)),
                 semantic=torch.from_numpy(semantic),
                 masks=torch.from_numpy(masks),
                 boxes=torch.from_numpy(boxes),
                 labels=torch.tensor(labels, dtype=torch.int64))


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv
    k = (np.array([5, 3, 1]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


class _ShapesBase(Dataset):
    def __init__(self, n: int, size: int = 64, seed: int = 0, max_objects: int = 4):
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        self.n, self.size, self.seed, self.max_objects = n, size, seed, max_objects
        self._scenes: dict[int, Scene] = {}

    def __len__(self) -> int:
        return self.n

    def scene(self, index: int) -> Scene:
        """Scene ``index`` (generated from ``[seed, index]`` once, then cached)."""
        if not 0 <= index < self.n:
            raise IndexError(f"scene index {index} out of range for {self.n} scenes")
        if index not in self._scenes:
            self._scenes[index] = make_scene(np.random.default_rng([self.seed, index]),
                                             size=self.size, max_objects=self.max_objects)
        return self._scenes[index]


class ShapesSegmentation(_ShapesBase):
    """``(image, semantic_mask)`` pairs for semantic segmentation; ``len(CLASSES)`` classes."""

    num_classes = len(CLASSES)

    def __getitem__(self, index: int):
        s = self.scene(index)
        return s.image, s.semantic


class ShapesDetection(_ShapesBase):
    """``(image, target)`` pairs in torchvision's detection format: target has ``boxes`` (K, 4),
    ``labels`` (K,) and ``masks`` (K, H, W) uint8."""

    num_classes = len(CLASSES)

    def __getitem__(self, index: int):
        s = self.scene(index)
        return s.image, {"boxes": s.boxes, "labels": s.labels, "masks": s.masks.to(torch.uint8)}


def detection_collate(batch):
    """Keep images and targets as lists (detectors take images of any size and any number of boxes)."""
    images, targets = zip(*batch)
    return list(images), list(targets)


def _stack(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return stack_pairs(ShapesSegmentation(n, size=size, seed=seed), range(n))


def load_shapes_split(n_train: int = 2000, n_val: int = 200, n_test: int = 500, size: int = 64,
                      seed: int = 0) -> Split:
    """Shapes scenes for segmentation as a ``Split``: images (N, 3, H, W) in [0, 1], masks (N, H, W).

    Each split has its own scene seed (``3·seed + 0/1/2``), so the test scenes are the same whatever
    ``n_train`` is, and never overlap the training scenes.
    """
    return Split(*_stack(n_train, size, 3 * seed), *_stack(n_val, size, 3 * seed + 1),
                 *_stack(n_test, size, 3 * seed + 2), name="shapes", classes=CLASSES)
