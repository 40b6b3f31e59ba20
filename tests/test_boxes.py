"""coursekit.ops.boxes against torchvision.ops, its BoxCoder and its AnchorGenerator."""

import pytest
import torch
from torchvision import ops
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from coursekit.ops import boxes as B


def random_boxes(n, size=64.0, seed=0, min_side=1.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = min_side + torch.rand(n, 2, generator=g) * size / 2
    return torch.cat([xy, xy + wh], dim=1)


def test_area_and_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 7.0]])
    assert B.box_area(b).tolist() == [4.0, 4.0, 4.0, 2.0]
    # overlap 1, union 4 + 4 - 1 = 7; touching edges overlap 0; identical 1; disjoint 0
    torch.testing.assert_close(B.box_iou(a, b), torch.tensor([[1 / 7, 0.0, 1.0, 0.0]]))


def test_iou_matches_torchvision():
    b1, b2 = random_boxes(30, seed=1), random_boxes(20, seed=2)
    torch.testing.assert_close(B.box_area(b1), ops.box_area(b1))
    torch.testing.assert_close(B.box_iou(b1, b2), ops.box_iou(b1, b2))


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_match_box_coder(weights):
    boxes, reference = random_boxes(50, seed=3), random_boxes(50, seed=4)
    coder = BoxCoder(weights)
    deltas = B.encode_boxes(boxes, reference, weights)
    torch.testing.assert_close(deltas, coder.encode_single(boxes, reference))
    decoded = B.decode_boxes(deltas, reference, weights)
    torch.testing.assert_close(decoded, coder.decode_single(deltas, reference))
    torch.testing.assert_close(decoded, boxes, atol=1e-4, rtol=1e-4)  # decode inverts encode


def test_decode_clips_huge_scales_like_torchvision():
    reference = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    deltas = torch.tensor([[0.0, 0.0, 50.0, 50.0]])
    out = B.decode_boxes(deltas, reference)
    torch.testing.assert_close(out, BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(deltas, reference))
    assert torch.isfinite(out).all()


def test_zero_deltas_give_the_reference():
    reference = random_boxes(5, seed=5)
    torch.testing.assert_close(B.decode_boxes(torch.zeros(5, 4), reference, (10, 10, 5, 5)), reference)


def test_base_anchors_hand_computed():
    anchors = B.base_anchors([16], [0.25, 1.0, 4.0])  # ratio h/w = 1/4: 32 wide, 8 high
    assert anchors.tolist() == [[-16.0, -4.0, 16.0, 4.0], [-8.0, -8.0, 8.0, 8.0], [-4.0, -16.0, 4.0, 16.0]]


@pytest.mark.parametrize("feature, image", [((16, 16), (64, 64)), ((4, 6), (32, 48)), ((5, 5), (67, 67))])
def test_grid_anchors_match_anchor_generator(feature, image):
    sizes, ratios = (8, 16), (0.5, 1.0, 2.0)
    generator = AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,))
    images = ImageList(torch.zeros(1, 3, *image), [image])
    expected = generator(images, [torch.zeros(1, 4, *feature)])[0]
    torch.testing.assert_close(B.grid_anchors(feature, image, sizes, ratios), expected)


def test_nms_hand_computed():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0],
                          [0.0, 0.0, 10.0, 5.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (best) overlaps box 0 by 0.5: with threshold 0.6 box 0 survives and suppresses box 1 (IoU 0.68)
    assert B.nms(boxes, scores, 0.6).tolist() == [3, 0, 2]
    # with 0.4 box 3 removes box 0, and a removed box removes nothing: box 1 (IoU 36/114 with box 3) stays
    assert B.nms(boxes, scores, 0.4).tolist() == [3, 1, 2]
    assert B.nms(boxes[:0], scores[:0], 0.5).tolist() == []


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_nms_matches_torchvision(threshold):
    boxes = random_boxes(200, size=40.0, seed=6)
    scores = torch.rand(200, generator=torch.Generator().manual_seed(7))
    assert B.nms(boxes, scores, threshold).tolist() == ops.nms(boxes, scores, threshold).tolist()


def test_batched_nms_matches_torchvision():
    boxes = random_boxes(150, size=40.0, seed=8)
    g = torch.Generator().manual_seed(9)
    scores, labels = torch.rand(150, generator=g), torch.randint(1, 4, (150,), generator=g)
    assert (B.batched_nms(boxes, scores, labels, 0.5).tolist()
            == ops.batched_nms(boxes, scores, labels, 0.5).tolist())
    assert B.batched_nms(boxes[:0], scores[:0], labels[:0], 0.5).tolist() == []
