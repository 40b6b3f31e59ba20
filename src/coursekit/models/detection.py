"""Faster R-CNN and Mask R-CNN from torchvision, sized for small images and trained from scratch.

torchvision's builders (``fasterrcnn_resnet50_fpn`` ...) assume photographs: they rescale every image
so its short side is 800 px, use anchors of 32–512 px, a ResNet-50 backbone and heads with 256–1024
channels, and expect ImageNet-pretrained weights. Our shapes scenes are 64×64 with objects of
10–30 px and no pretrained weights can be downloaded, so we keep torchvision's detection machinery
(RPN, RoIAlign, box and mask heads, losses, post-processing) and change its sizes:

* ``min_size = max_size = image_size``: the transform keeps the image as it is.
* A small convolutional backbone (``SmallBackbone``, three stages at strides 4, 8 and 16) with a
  Feature Pyramid Network (Lin et al., 2017) of ``fpn_channels`` channels and an extra max-pooled
  level, as in Mask R-CNN (He et al., 2017).
* Anchors of 8, 16, 32 and 64 px, one size per pyramid level, three aspect ratios.
* Thin box and mask heads and fewer proposals, so a CPU trains the whole thing in minutes.

Labels start at 1; 0 is the background class, so ``num_classes`` counts it (shapes: 4).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SmallBackbone(nn.Sequential):
    """A plain VGG-like encoder: a stride-4 stem, then stages that halve the resolution.

    ``widths = (w1, w2, w3)`` are the channels of the stages at strides 4, 8 and 16; each stage is two
    3×3 convolutions with batch norm and ReLU (the first one strided). Its children are named
    ``stem``, ``layer1``, ``layer2``, ``layer3`` so torchvision's ``BackboneWithFPN`` can tap them.
    """

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64)):
        w1, w2, w3 = widths
        super().__init__(OrderedDict(
            stem=nn.Sequential(_conv(3, w1 // 2, stride=2), _conv(w1 // 2, w1 // 2)),
            layer1=nn.Sequential(_conv(w1 // 2, w1, stride=2), _conv(w1, w1)),
            layer2=nn.Sequential(_conv(w1, w2, stride=2), _conv(w2, w2)),
            layer3=nn.Sequential(_conv(w2, w3, stride=2), _conv(w3, w3)),
        ))


def small_fpn_backbone(widths: tuple[int, int, int] = (16, 32, 64), fpn_channels: int = 32) -> BackboneWithFPN:
    """``SmallBackbone`` + FPN: feature maps '0', '1', '2' (strides 4, 8, 16) and 'pool' (stride 32),
    each with ``fpn_channels`` channels (the ``out_channels`` the detection heads read)."""
    return BackboneWithFPN(SmallBackbone(widths), return_layers={"layer1": "0", "layer2": "1", "layer3": "2"},
                           in_channels_list=list(widths), out_channels=fpn_channels,
                           extra_blocks=LastLevelMaxPool())


def small_anchors(sizes: tuple[int, ...] = (8, 16, 32, 64),
                  aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)) -> AnchorGenerator:
    """One anchor size per pyramid level (strides 4, 8, 16, 32), each with every aspect ratio."""
    return AnchorGenerator(sizes=tuple((s,) for s in sizes), aspect_ratios=(tuple(aspect_ratios),) * len(sizes))


def _common_kwargs(image_size: int, box_score_thresh: float) -> dict:
    return dict(
        min_size=image_size, max_size=image_size,  # no rescaling (the default would blow 64 px up to 800)
        rpn_anchor_generator=small_anchors(),
        # a few objects per image: far fewer proposals and sampled RoIs than for COCO photographs
        rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=150,
        rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=64, box_batch_size_per_image=64,
        box_score_thresh=box_score_thresh, box_detections_per_img=20,
    )


def _box_heads(fpn_channels: int, representation: int, num_classes: int):
    roi_pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2)
    head = TwoMLPHead(fpn_channels * 7 * 7, representation)
    return roi_pool, head, FastRCNNPredictor(representation, num_classes)


def detector(num_classes: int = 4, image_size: int = 64, widths: tuple[int, int, int] = (16, 32, 64),
             fpn_channels: int = 32, representation: int = 128, box_score_thresh: float = 0.05,
             weights=None, weights_backbone=None) -> FasterRCNN:
    """Faster R-CNN (Ren et al., 2015) with a small FPN backbone for ``image_size``-pixel images.

    ``weights`` and ``weights_backbone`` exist to say it loudly: nothing is pretrained, and passing
    anything else than ``None`` is an error.
    """
    _no_weights(weights, weights_backbone)
    roi_pool, head, predictor = _box_heads(fpn_channels, representation, num_classes)
    return FasterRCNN(small_fpn_backbone(tuple(widths), fpn_channels), num_classes=None,
                      box_roi_pool=roi_pool, box_head=head, box_predictor=predictor,
                      **_common_kwargs(image_size, box_score_thresh))


def maskrcnn(num_classes: int = 4, image_size: int = 64, widths: tuple[int, int, int] = (16, 32, 64),
             fpn_channels: int = 32, representation: int = 128, mask_channels: int = 32,
             box_score_thresh: float = 0.05, weights=None, weights_backbone=None) -> MaskRCNN:
    """Mask R-CNN (He et al., 2017): ``detector`` plus a mask head of four 3×3 convolutions with
    ``mask_channels`` channels on 14×14 RoIAlign features, upsampled to 28×28 per-class masks."""
    _no_weights(weights, weights_backbone)
    roi_pool, head, predictor = _box_heads(fpn_channels, representation, num_classes)
    mask_pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=14, sampling_ratio=2)
    mask_head = MaskRCNNHeads(fpn_channels, (mask_channels,) * 4, dilation=1)
    mask_predictor = MaskRCNNPredictor(mask_channels, mask_channels, num_classes)
    return MaskRCNN(small_fpn_backbone(tuple(widths), fpn_channels), num_classes=None,
                    box_roi_pool=roi_pool, box_head=head, box_predictor=predictor,
                    mask_roi_pool=mask_pool, mask_head=mask_head, mask_predictor=mask_predictor,
                    **_common_kwargs(image_size, box_score_thresh))


def _no_weights(weights, weights_backbone) -> None:
    if weights is not None or weights_backbone is not None:
        raise ValueError("these detectors are trained from scratch: weights and weights_backbone must be None "
                         "(nothing can be downloaded)")


__all__ = ["SmallBackbone", "detector", "maskrcnn", "small_anchors", "small_fpn_backbone"]
