import pytest
import torch
import torch.nn.functional as F
import torchvision
from mmcv.ops import roi_align
from mmdet.models.layers import SinePositionalEncoding
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample

from bipa.models.prompted_features import PromptedFeatures
from tests.conftest import sampling_result

ROIS = torch.tensor([[0, 10., 12., 50., 44.], [1, 20., 30., 60., 90.], [1, 3., 3., 20., 11.]])


@pytest.mark.parametrize('positional_encoding', [dict(num_feats=16, normalize=True), None])
def test_rois_pool_the_right_pixels_from_channels_last_levels(tiny_model_cfg, demo_batch,
                                                              positional_encoding):
    """mmcv's RoIAlign reads its input as contiguous NCHW without checking. The
    FAI neck returns contiguous levels; levels with channels-last strides (from
    another neck, or torch's memory-format propagation) must still pool the
    same values as torchvision, which honours strides."""
    model = MODELS.build(tiny_model_cfg(**{'roi_head.positional_encoding': positional_encoding}))
    model.eval()
    data = model.data_preprocessor(demo_batch(shapes=((3, 128, 128), (3, 128, 128))), False)
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
        assert all(level.is_contiguous() for level in feats)  # LayerNorm2d's output
        feats = feats.replace_levels(level.contiguous(memory_format=torch.channels_last)
                                     for level in feats)
        assert not feats[0].is_contiguous()  # the case this test guards
        levels = model.roi_head.add_positional_encoding(feats, data['data_samples'])
        pooled = model.roi_head.bbox_roi_extractor(levels[:4], ROIS)
    assert all(level.is_contiguous() and level.dtype == torch.float32 for level in levels)
    reference = levels[0].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels-last
    expected = torchvision.ops.roi_align(reference, ROIS, 7, 1 / 4, 0, aligned=True)
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-5)
    # and without the head's fix the pooled values would differ
    wrong = roi_align(reference, ROIS, 7, 1 / 4, 0, 'avg', True)
    assert not torch.allclose(wrong, expected, atol=1e-3)


def test_add_positional_encoding_keeps_image_embeddings(tiny_model_cfg, demo_batch):
    model = MODELS.build(tiny_model_cfg())
    data = model.data_preprocessor(demo_batch(), False)
    feats = model.extract_feat(data['inputs'])
    levels = model.roi_head.add_positional_encoding(feats, data['data_samples'])
    assert isinstance(levels, PromptedFeatures)
    assert levels.image_embeddings is feats.image_embeddings
    assert len(levels) == len(feats)


@pytest.mark.parametrize('num_items, gt_inds', [
    ((3, 1), ([3, 0, 3, 3, 2], [0, 1, 1])),
    ((1, 2), ([1, 1], [2, 0, 2])),
], ids=['3 GTs, then 1', '1 GT, then 2'])
def test_mask_loss_compares_each_roi_with_its_assigned_gt(tiny_model_cfg, demo_batch,
                                                          num_items, gt_inds):
    """The mask branch's loss is the BCE of positive i's mask against the full
    mask of the GT it is assigned to (``pos_assigned_gt_inds``)."""
    model = MODELS.build(tiny_model_cfg())
    model.eval()
    with torch.no_grad():  # logits far from 0 that differ from RoI to RoI
        model.roi_head.mask_head.mask_decoder.output_hypernetworks_mlps[0] \
            .layers[-1].weight.mul_(30)
    data = model.data_preprocessor(demo_batch(num_items=num_items), True)
    samples = data['data_samples']
    gts = [s.gt_instances for s in samples]
    sampling = [sampling_result(gt.bboxes, inds) for gt, inds in zip(gts, gt_inds)]
    with torch.no_grad():
        x = model.roi_head.add_positional_encoding(model.extract_feat(data['inputs']), samples)
        out = model.roi_head.mask_loss(x, sampling, None, gts)

    def loss_against(targets):
        logits = model.roi_head.mask_head.upsample(out['mask_preds'], targets.shape[-2:])
        return F.binary_cross_entropy_with_logits(logits, targets)

    masks = [gt.masks.to_tensor(torch.float32, 'cpu') for gt in gts]
    assert all(m.shape[-2:] == data['inputs'].shape[-2:] for m in masks)  # padded GT
    assigned = torch.cat([m[[i - 1 for i in inds if i]] for m, inds in zip(masks, gt_inds)])
    loss = out['loss_mask']['loss_mask']
    torch.testing.assert_close(loss, loss_against(assigned))
    first = torch.cat([m[[0] * (len(inds) - inds.count(0))] for m, inds in zip(masks, gt_inds)])
    assert not torch.allclose(loss, loss_against(first), rtol=1e-3)  # GT 0 for every RoI


def _pe_levels(pe_mask):
    head = MODELS.build(dict(type='BiPARoIHead', pe_mask=pe_mask,
                             positional_encoding=dict(num_feats=8, normalize=True)))
    torch.manual_seed(0)
    x = PromptedFeatures([torch.randn(3, 16, 128 // s, 128 // s) for s in (4, 8, 16, 32)],
                         image_embeddings=None)
    samples = []
    for shape in ((96, 128), (128, 64), (128, 128)):  # (h, w) in a 128 x 128 batch
        sample = DetDataSample()
        sample.set_metainfo(dict(img_shape=shape, batch_input_shape=(128, 128)))
        samples.append(sample)
    return x, head.add_positional_encoding(x, samples)


def test_pe_mask_none_spans_the_padded_canvas():
    """'none' (the authors): the all-canvas PE of level 0, resized to each level."""
    x, padding = _pe_levels('padding')
    _, none = _pe_levels('none')
    pe = SinePositionalEncoding(num_feats=8, normalize=True)
    first = pe(torch.zeros(1, *x[0].shape[-2:], dtype=torch.bool))
    for level, (feat, p, n) in enumerate(zip(x, padding, none)):
        canvas = torch.nn.functional.interpolate(first, size=feat.shape[-2:], mode='bilinear',
                                                 align_corners=False)
        torch.testing.assert_close(n, feat + canvas, rtol=0, atol=0)
        if level == 0:  # the image fills the canvas: no padding, nothing resized
            torch.testing.assert_close(p[2], n[2])
        else:  # resized from level 0 is not computed at the level
            assert not torch.allclose(p[2], n[2])
        assert not torch.allclose(p[0], n[0]) and not torch.allclose(p[1], n[1])
    with pytest.raises(ValueError, match=r"model\.roi_head\.pe_mask must be one of .*'none'"):
        MODELS.build(dict(type='BiPARoIHead', pe_mask='zeros'))
