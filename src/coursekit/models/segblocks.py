"""Building blocks shared by the segmentation models (FCN, SegNet, U-Net)."""

from __future__ import annotations

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int, num_convs: int = 2, padding: int = 1) -> nn.Sequential:
    """``num_convs`` × (3×3 convolution, BatchNorm, ReLU).

    ``padding=1`` keeps H×W ("same"); ``padding=0`` is the original U-Net's "valid" convolution, which
    loses one pixel on each side per convolution. BatchNorm (absent from the FCN and U-Net papers, part
    of SegNet) lets these small networks train from scratch in a few epochs; the convolution before it
    needs no bias.
    """
    layers: list[nn.Module] = []
    for k in range(num_convs):
        layers += [nn.Conv2d(in_channels if k == 0 else out_channels, out_channels, 3, padding=padding,
                             bias=False),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height × width`` window of ``x`` (…, H, W); odd margins lose the extra pixel at
    the bottom/right."""
    h, w = x.shape[-2:]
    if height > h or width > w:
        raise ValueError(f"cannot crop {h}×{w} to a larger {height}×{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return x[..., top:top + height, left:left + width]
