"""mmcv's compiled CPU ops agree with torchvision's."""
import pytest
import torch
import torchvision.ops as tv_ops
from mmcv.ops import RoIAlign, batched_nms, nms


def random_boxes(n: int, size: float = 100.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], dim=1), torch.rand(n, generator=g)


@pytest.mark.parametrize('iou', [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(iou):
    boxes, scores = random_boxes(200)
    dets, keep = nms(boxes, scores, iou)
    expected = tv_ops.nms(boxes, scores, iou)
    assert torch.equal(keep, expected)
    torch.testing.assert_close(dets[:, 4], scores[expected])


def test_batched_nms_matches_torchvision():
    boxes, scores = random_boxes(300, seed=1)
    idxs = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(2))
    dets, keep = batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=0.5))
    expected = tv_ops.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(keep.sort().values, expected.sort().values)


@pytest.mark.parametrize('aligned', [True, False])
def test_roi_align_matches_torchvision(aligned):
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(2, 8, 32, 32, generator=g)
    boxes, _ = random_boxes(20, size=100, seed=4)
    rois = torch.cat([torch.randint(0, 2, (20, 1), generator=g).float(), boxes], dim=1)
    ours = RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=2, aligned=aligned)(feats, rois)
    theirs = tv_ops.roi_align(feats, rois, (7, 7), spatial_scale=0.25, sampling_ratio=2,
                              aligned=aligned)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
