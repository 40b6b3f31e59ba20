"""The course's one batcher: mini-batches sliced from tensors held in memory.

Indexing whole tensors with a batch of indices is far cheaper than a ``DataLoader``'s item-by-item
collation, which dominates for small images; every dataset of the course fits in memory.
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch


class Batches:
    """Mini-batches ``(x,)`` or ``(x, y, ...)`` of tensors sharing their first dimension.

    ``shuffle`` draws a new order every epoch from a generator seeded with ``seed`` (the global RNG is
    never touched, so the caller's stream is unchanged). ``augment`` flips each batch left-right and/or
    up-down and transposes it, each with probability 1/2, the same way for every tensor: for images
    (N, C, H, W) with masks (N, H, W) whose classes do not change under those moves.

    ``shard(rank, world_size)`` gives one process of a data-parallel run its part of every batch (the
    ``fit`` loop calls it under ``torch.distributed``); ``to(device)`` puts the tensors on a GPU once, so
    that batches are gathered there rather than copied from host memory at every step.
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
        self.shuffle, self.augment, self.seed = shuffle, augment, seed
        self.generator = torch.Generator().manual_seed(seed)
        # A shard (``shard``): this process's rank among ``world_size``, and its own augmentation draws.
        self.rank, self.world_size = 0, 1
        self.augment_generator: torch.Generator | None = None  # None: augment from ``generator``

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        return sum(t.numel() * t.element_size() for t in self.tensors)

    def shard(self, rank: int, world_size: int, *, augment_seed: int) -> Batches:
        """This process's part of every batch when ``world_size`` processes train together (data parallel).

        Every epoch's order is drawn from ``seed`` as before, the same on every rank; each global batch
        of ``batch_size`` is then dealt out, element ``i`` to rank ``i % world_size``, so the ranks' parts
        are disjoint and together cover the data, and a step of all the ranks sees exactly the batch one
        process would. Each part has ``ceil(batch_size / world_size)`` elements (``batch_size //
        world_size`` when it divides); where a batch does not divide evenly (the last one, say), its
        first elements are repeated to fill the parts, as ``DistributedSampler`` pads. Every rank makes
        ``len(self)`` steps. Flips and transposes are drawn from ``augment_seed`` (``fit`` passes one derived
        from ``seed`` and the rank: ``coursekit.distributed.rank_seed``), so each rank augments its part
        differently. The shard shares the
        tensors and the order's generator with ``self``.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        view = copy.copy(self)
        view.rank, view.world_size = rank, world_size
        view.augment_generator = torch.Generator().manual_seed(augment_seed)
        return view

    def to(self, device: torch.device | str) -> Batches:
        """The same batches (same order and draws, sharing the generators) with the tensors on ``device``."""
        view = copy.copy(self)
        view.tensors = tuple(t.to(device) for t in self.tensors)
        return view

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.tensors[0])
        device = self.tensors[0].device
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        if order is not None and device.type != "cpu":
            order = order.to(device, non_blocking=True)  # gather on the device: no host copy per batch
        augment_generator = self.augment_generator if self.augment_generator is not None else self.generator
        for start in range(0, n, self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
            if self.world_size > 1:
                index = self._part(index, min(start + self.batch_size, n) - start, device)
            batch = tuple(t[index] for t in self.tensors)
            if self.augment:
                flip_h, flip_v, transpose = torch.rand(3, generator=augment_generator) < 0.5
                if flip_h:
                    batch = tuple(t.flip(-1) for t in batch)
                if flip_v:
                    batch = tuple(t.flip(-2) for t in batch)
                if transpose:
                    batch = tuple(t.transpose(-1, -2) for t in batch)
            yield batch

    def _part(self, index: slice | torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
        """This rank's elements of one global batch (``size`` elements at ``index``), padded to an equal share."""
        if isinstance(index, slice):
            index = torch.arange(index.start, index.start + size, device=device)
        share = -(-size // self.world_size)
        padded = index[torch.arange(share * self.world_size, device=device) % size]
        return padded[self.rank::self.world_size]
