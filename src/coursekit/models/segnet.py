"""SegNet: an encoder–decoder whose decoder upsamples with the encoder's max-pooling indices.

Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder Architecture for
Image Segmentation", TPAMI 2017.

Each encoder stage is convolutions then a 2×2 max-pool that also returns *where* each maximum was
(``return_indices=True``). The mirrored decoder stage first *unpools*: ``MaxUnpool2d`` writes every
value back at its saved position and zeros elsewhere, a sparse map with the encoder's exact boundary
positions; convolutions then densify it. The decoder thus recovers where edges were without storing
the encoder's feature maps (as U-Net does): only the indices, 2 bits per 2×2 window in principle.

Sizes that are not multiples of 2^depth: the pools use ``ceil_mode=True`` and each unpooling is given
the pre-pooling size (``output_size``), so 67×91 comes back as 67×91.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from coursekit.models.segblocks import conv_block


class SegNet(nn.Module):
    """SegNet with ``len(widths)`` encoder stages (``num_convs`` convolutions each) and a mirrored decoder."""

    def __init__(self, num_classes: int = 4, in_channels: int = 3, widths: Sequence[int] = (16, 32, 48, 64),
                 num_convs: int = 2):
        super().__init__()
        chans = [in_channels, *widths]
        self.encoder = nn.ModuleList(conv_block(chans[k], chans[k + 1], num_convs) for k in range(len(widths)))
        # decoder stage k mirrors encoder stage k: widths[k] channels in, widths[k-1] out (widths[0] last)
        outs = [widths[0], *widths[:-1]]
        self.decoder = nn.ModuleList(conv_block(widths[k], outs[k], num_convs) for k in range(len(widths)))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Size]]:
        """The code, and per stage the pooling indices and the pre-pooling size."""
        indices, sizes = [], []
        for stage in self.encoder:
            x = stage(x)
            sizes.append(x.shape[-2:])
            x, idx = self.pool(x)
            indices.append(idx)
        return x, indices, sizes

    def decode(self, x: torch.Tensor, indices: list[torch.Tensor], sizes: list[torch.Size]) -> torch.Tensor:
        """Per stage, deepest first: unpool at the saved indices to the saved size, then convolve."""
        for stage, idx, size in zip(reversed(self.decoder), reversed(indices), reversed(sizes)):
            x = stage(self.unpool(x, idx, output_size=size))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.decode(*self.encode(x)))


def segnet(num_classes: int = 4, **kwargs) -> SegNet:
    """A small SegNet (four stages, widths 16-32-48-64) for our 64×64 scenes."""
    return SegNet(num_classes, **kwargs)
