"""The course's one batcher: mini-batches sliced from tensors held in memory.

Indexing whole tensors with a batch of indices is far cheaper than a ``DataLoader``'s item-by-item
collation, which dominates for small images; every dataset of the course fits in memory.
"""

from __future__ import annotations

from typing import Iterator

import torch


class Batches:
    """Mini-batches ``(x,)`` or ``(x, y, ...)`` of tensors sharing their first dimension.

    ``shuffle`` draws a new order every epoch from a generator seeded with ``seed`` (the global RNG is
    never touched, so the caller's stream is unchanged). ``augment`` flips each batch left-right and/or
    up-down and transposes it, each with probability 1/2, the same way for every tensor: for images
    (N, C, H, W) with masks (N, H, W) whose classes do not change under those moves.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = True, augment: bool = False,
                 seed: int = 0):
        if not tensors:
            raise ValueError("Batches needs at least one tensor")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError(f"tensors of different lengths: {[len(t) for t in tensors]}")
        if augment and any(t.dim() < 3 for t in tensors):
            raise ValueError("augment flips height and width: every tensor needs shape (N, ..., H, W)")
        self.tensors, self.batch_size = tensors, batch_size
        self.shuffle, self.augment = shuffle, augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.tensors[0])
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
            batch = tuple(t[index] for t in self.tensors)
            if self.augment:
                flip_h, flip_v, transpose = torch.rand(3, generator=self.generator) < 0.5
                if flip_h:
                    batch = tuple(t.flip(-1) for t in batch)
                if flip_v:
                    batch = tuple(t.flip(-2) for t in batch)
                if transpose:
                    batch = tuple(t.transpose(-1, -2) for t in batch)
            yield batch
