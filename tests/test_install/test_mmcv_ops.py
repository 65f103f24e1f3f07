"""mmcv's compiled ops agree with torchvision's, in float32 (the dtype the
model hands them: the RoI head casts the levels, see test_models/test_cuda.py),
on every available device: ``pytest -m cuda`` runs the CUDA cases."""
import pytest
import torch
import torchvision.ops as tv_ops
from mmcv.ops import RoIAlign, batched_nms, nms

DEVICES = ['cpu', pytest.param('cuda', marks=[
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')])]


def random_boxes(n: int, size: float = 100.0, seed: int = 0, device: str = 'cpu'):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], dim=1).to(device), torch.rand(n, generator=g).to(device)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('iou', [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(device, iou):
    boxes, scores = random_boxes(500, device=device)
    dets, keep = nms(boxes, scores, iou)
    expected = tv_ops.nms(boxes, scores, iou)
    assert keep.device.type == device
    assert torch.equal(keep, expected)
    torch.testing.assert_close(dets[:, 4], scores[expected])


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('split_thr', [10000, 100])  # one NMS with offsets; one per class
def test_batched_nms_matches_torchvision(device, split_thr):
    boxes, scores = random_boxes(600, seed=1, device=device)
    idxs = torch.randint(0, 5, (600, ), generator=torch.Generator().manual_seed(2)).to(device)
    dets, keep = batched_nms(boxes, scores, idxs,
                             dict(type='nms', iou_threshold=0.5, split_thr=split_thr))
    expected = tv_ops.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(keep.sort().values, expected.sort().values)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])  # ViT-H configs: 0; the demo: 2
def test_roi_align_matches_torchvision(device, aligned, sampling_ratio):
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(2, 8, 32, 32, generator=g).to(device)
    boxes, _ = random_boxes(40, size=100, seed=4)
    rois = torch.cat([torch.randint(0, 2, (40, 1), generator=g).float(), boxes], dim=1)
    rois = rois.to(device)
    ours = RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=sampling_ratio,
                    aligned=aligned)(feats, rois)
    theirs = tv_ops.roi_align(feats, rois, (7, 7), spatial_scale=0.25,
                              sampling_ratio=sampling_ratio, aligned=aligned)
    assert ours.device.type == device and ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
