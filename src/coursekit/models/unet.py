"""U-Net: a contracting path, an expanding path, and concatenated skip connections.

Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015.

The contracting path repeats (two 3×3 convolutions, 2×2 max-pool), doubling the channels at each
level; the expanding path repeats (2×2 up-convolution halving the channels, concatenation with the
contracting path's map at the same level, two 3×3 convolutions). A 1×1 convolution gives the class
scores. Unlike FCN's *sum* of class scores, the skip *concatenates* whole feature maps, so the
decoder sees the fine features themselves.

Two variants:

* ``padding="valid"`` (the paper): unpadded convolutions lose 2 pixels per convolution, so each
  skip map is larger than the upsampled map and is **centre-cropped** before concatenation; the
  output is smaller than the input (572 → 388 for the paper's depth 4). Whole images are predicted
  tile by tile on a mirror-padded input (``overlap-tile``, see ``valid_input_size``).
* ``padding="same"`` (what we train): padded convolutions keep sizes, output H×W = input H×W. For
  sizes that are not multiples of 2^depth (e.g. 67×91) the floor-mode pool drops the last row or
  column and the up-convolution gives back an even size, so the upsampled map is zero-padded at the
  bottom/right (where the dropped pixels were) to the skip's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.models.segblocks import center_crop, conv_block


class UNet(nn.Module):
    """U-Net with ``depth`` poolings; level k has ``base_width · 2^k`` channels."""

    def __init__(self, num_classes: int = 4, in_channels: int = 3, base_width: int = 16, depth: int = 3,
                 padding: str = "same"):
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        self.padding, self.depth = padding, depth
        pad = 1 if padding == "same" else 0
        widths = [base_width * 2 ** k for k in range(depth + 1)]
        chans = [in_channels, *widths]
        self.down = nn.ModuleList(conv_block(chans[k], chans[k + 1], padding=pad) for k in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = conv_block(widths[depth - 1], widths[depth], padding=pad)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2) for k in range(depth))
        self.up_convs = nn.ModuleList(conv_block(2 * widths[k], widths[k], padding=pad) for k in range(depth))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for k in reversed(range(self.depth)):
            x = self.up[k](x)
            x = self.up_convs[k](torch.cat(match_skip(skips[k], x, self.padding), dim=1))
        return self.head(x)


def match_skip(skip: torch.Tensor, up: torch.Tensor, padding: str = "same") -> tuple[torch.Tensor, torch.Tensor]:
    """Make the skip map and the upsampled map the same size before concatenation.

    ``valid``: centre-crop the (larger) skip to the upsampled size, as the paper does.
    ``same``: zero-pad the upsampled map at the bottom/right to the skip's size (at most one pixel
    per level, from odd sizes).
    """
    if padding == "valid":
        return center_crop(skip, *up.shape[-2:]), up
    dh, dw = skip.shape[-2] - up.shape[-2], skip.shape[-1] - up.shape[-1]
    return skip, F.pad(up, [0, dw, 0, dh])


def valid_output_size(size: int, depth: int = 4) -> int | None:
    """Output side of a valid-convolution U-Net for an input side ``size`` (None if a pool gets an odd
    size, which would misalign the crops)."""
    for _ in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4
    for _ in range(depth):
        size = 2 * size - 4
    return size if size > 0 else None


def valid_input_size(output_size: int, depth: int = 4) -> int:
    """Smallest input side whose valid-U-Net output is at least ``output_size`` (for overlap-tile)."""
    size = output_size
    while (out := valid_output_size(size, depth)) is None or out < output_size:
        size += 1
    return size


def unet(num_classes: int = 4, base_width: int = 16, depth: int = 3, **kwargs) -> UNet:
    """The padded U-Net we train on the shapes scenes (base width 16, three poolings)."""
    return UNet(num_classes, base_width=base_width, depth=depth, padding="same", **kwargs)


def unet_valid(num_classes: int = 2, base_width: int = 64, depth: int = 4, **kwargs) -> UNet:
    """The paper's U-Net: valid convolutions, centre-cropped skips (572×572 in → 388×388 out)."""
    return UNet(num_classes, base_width=base_width, depth=depth, padding="valid", **kwargs)
