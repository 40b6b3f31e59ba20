"""Fully convolutional networks: FCN-32s, FCN-16s and FCN-8s.

Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015.
A classification network becomes a segmentation network in three steps:

1. the *encoder* is a VGG-like stack of 3×3 convolutions and 2×2 max-pools (five pools: stride 32);
   its fully connected layers ``fc6``/``fc7`` are rewritten as convolutions, so any input size works;
2. a 1×1 convolution turns each cell of the coarse map into ``num_classes`` *class scores*;
3. a *learned upsampling* (a transposed convolution initialised to bilinear interpolation) brings the
   scores back to the input size.

FCN-32s upsamples the stride-32 scores in one ×32 step. FCN-16s first upsamples them ×2 and adds the
scores of ``pool4`` (stride 16), then upsamples ×16; FCN-8s adds ``pool3`` (stride 8) as well and
upsamples ×8. The finer skips bring back the spatial detail the pools threw away.

Sizes that are not multiples of 32 (e.g. 67×91): the pools use ``ceil_mode=True``, so a stride-s map
has ``ceil(H/s)`` cells, cell ``i`` covering pixels ``[i·s, (i+1)·s)``. A transposed convolution with
kernel 2f, stride f and padding f/2 maps n cells to exactly n·f pixels with cell centres on block
centres, so every upsampled map is aligned at the top-left and only needs cropping at the
bottom/right: to the skip map's size before each sum, and to H×W at the end. (The paper pads the
input by 100 pixels and crops with offsets instead; our padded convolutions make that unnecessary.)

This is the paper's architecture, scaled down and trained from scratch (with BatchNorm, which the
paper's VGG-16 lacks); torchvision's ``fcn_resnet50`` is a different, dilated-ResNet design.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from coursekit.models.segblocks import conv_block

VARIANTS = {"32s": 32, "16s": 16, "8s": 8}


def bilinear_kernel(kernel_size: int) -> torch.Tensor:
    """The ``k × k`` kernel that makes ``ConvTranspose2d(stride=(k+1)//2)`` interpolate bilinearly:
    the outer product of the 1-D "tent" ``1 − |i − centre| / factor``."""
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    tent = 1 - (torch.arange(kernel_size, dtype=torch.float64) - centre).abs() / factor
    return torch.outer(tent, tent).float()


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable ×``factor`` upsampling initialised to bilinear interpolation (n cells → n·factor).

    One kernel per class (``groups=channels``): the paper's Caffe layer is a full channels×channels
    kernel initialised to this same diagonal, which for FCN-32s's 64×64 kernel would triple our
    small model's size without changing what it computes at initialisation.
    """
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False,
                            groups=channels)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(2 * factor).expand_as(up.weight))
    return up


class FCN(nn.Module):
    """FCN-32s/16s/8s (``variant``) on a five-stage VGG-like encoder with channel ``widths``."""

    def __init__(self, num_classes: int = 4, variant: str = "8s", in_channels: int = 3,
                 widths: Sequence[int] = (16, 32, 48, 48, 64), fc_width: int = 64, dropout: float = 0.1):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown FCN variant {variant!r}: use one of {sorted(VARIANTS)}")
        if len(widths) != 5:
            raise ValueError(f"the FCN encoder has five stages, got widths {tuple(widths)}")
        self.variant, self.num_classes = variant, num_classes
        chans = [in_channels, *widths]
        self.stages = nn.ModuleList(conv_block(chans[k], chans[k + 1]) for k in range(5))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        # fc6/fc7 as convolutions (the paper's 7×7 fc6 shrinks to 3×3 for our 2×2 stride-32 maps)
        self.fc = nn.Sequential(nn.Conv2d(widths[-1], fc_width, 3, padding=1), nn.ReLU(inplace=True),
                                nn.Dropout2d(dropout), nn.Conv2d(fc_width, fc_width, 1), nn.ReLU(inplace=True),
                                nn.Dropout2d(dropout))
        self.score = nn.Conv2d(fc_width, num_classes, 1)
        if variant in ("16s", "8s"):
            self.score_pool4 = self._skip_scorer(widths[3], num_classes)
            self.up_pool4 = bilinear_upsampler(num_classes, 2)
        if variant == "8s":
            self.score_pool3 = self._skip_scorer(widths[2], num_classes)
            self.up_pool3 = bilinear_upsampler(num_classes, 2)
        self.up_final = bilinear_upsampler(num_classes, VARIANTS[variant])

    @staticmethod
    def _skip_scorer(channels: int, num_classes: int) -> nn.Conv2d:
        # Zero-initialised, as in the paper: training starts from the coarser net's predictions.
        score = nn.Conv2d(channels, num_classes, 1)
        nn.init.zeros_(score.weight)
        nn.init.zeros_(score.bias)
        return score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pools = []
        h = x
        for stage in self.stages:
            h = self.pool(stage(h))
            pools.append(h)
        score = self.score(self.fc(h))                               # stride 32
        if self.variant in ("16s", "8s"):
            skip = self.score_pool4(pools[3])                        # stride 16
            score = _crop_to(self.up_pool4(score), skip) + skip
        if self.variant == "8s":
            skip = self.score_pool3(pools[2])                        # stride 8
            score = _crop_to(self.up_pool3(score), skip) + skip
        return self.up_final(score)[..., :height, :width]


def _crop_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Crop ``x`` at the bottom/right to ``like``'s H×W (both maps are aligned at the top-left)."""
    return x[..., :like.shape[-2], :like.shape[-1]]


def fcn32s(num_classes: int = 4, **kwargs) -> FCN:
    """FCN-32s: class scores at stride 32, one ×32 learned upsampling."""
    return FCN(num_classes, "32s", **kwargs)


def fcn16s(num_classes: int = 4, **kwargs) -> FCN:
    """FCN-16s: ×2 upsampling, + pool4 scores, ×16 upsampling."""
    return FCN(num_classes, "16s", **kwargs)


def fcn8s(num_classes: int = 4, **kwargs) -> FCN:
    """FCN-8s: as FCN-16s, then ×2 upsampling, + pool3 scores, ×8 upsampling."""
    return FCN(num_classes, "8s", **kwargs)
