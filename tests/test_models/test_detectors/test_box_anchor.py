"""``mask_head.anchor='box'``: at step 0 BiPA's mask branch is box-prompted SAM."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.config import Config

from bipa.models.sam_checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[3]
SAM_WEIGHTS = ROOT / 'checkpoints' / 'sam_vit-tiny_inair.pth'
SAM_CFG = ROOT / 'configs' / 'sam_vit-tiny_inair.py'


def bipa_model(tiny_model_cfg, **overrides):
    cfg = tiny_model_cfg(**{'sam_checkpoint': str(SAM_WEIGHTS),
                            'roi_head.mask_head.anchor': 'box', **overrides})
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


@pytest.fixture(scope='module')
def box_sam():
    model = MODELS.build(Config.fromfile(str(SAM_CFG)).model)
    model.load_state_dict(read_checkpoint(str(SAM_WEIGHTS), expected='the tiny SAM'))
    return model.eval()


def boxes_of(batch):
    """Boxes of unequal sizes inside each (unequally sized) image."""
    torch.manual_seed(4)
    out = []
    for sample, n in zip(batch['data_samples'], (3, 2)):
        h, w = sample.metainfo['img_shape'][:2]
        xy = torch.rand(n, 2) * torch.tensor([w * 0.6, h * 0.6])
        wh = torch.rand(n, 2) * torch.tensor([w * 0.4, h * 0.4]) + 4
        out.append(torch.cat([xy, xy + wh], dim=1))
    return out


def sam_logits(box_sam, inputs, boxes):
    img_inds = torch.cat([torch.full((len(b),), i) for i, b in enumerate(boxes)])
    masks, _ = box_sam.decode(box_sam.extract_feat(inputs), torch.cat(boxes), img_inds)
    return F.interpolate(masks, size=inputs.shape[-2:], mode='bilinear',
                         align_corners=False)[:, 0]


@pytest.mark.parametrize('generator', ['ours', 'authors'])
def test_zero_residual_is_box_prompted_sam(tiny_model_cfg, demo_batch, box_sam, generator):
    """With the residual at its initial zero (and the adapters at the
    identity), the mask logits of given boxes equal BoxPromptedSAM's, with the
    same SAM weights, for a 128x128 and a 96x128 image in one batch."""
    model = bipa_model(tiny_model_cfg, **{
        'roi_head.mask_head.prompt_generator.arch': generator})
    data = model.data_preprocessor(demo_batch(), False)
    inputs, samples = data['inputs'], data['data_samples']
    boxes = boxes_of(data)
    with torch.no_grad():
        prompts = model.mask_prompts(inputs, samples, boxes)
        ours = model.mask_logits(prompts, inputs.shape[-2:])
        expected = sam_logits(box_sam, inputs, boxes)
    assert prompts.tokens.shape == (5, 2, 32)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    # and the residual moves the masks away from SAM's once it is non-zero
    with torch.no_grad():
        model.roi_head.mask_head.residual_scale.fill_(1.0)
        moved = model.mask_logits(model.mask_prompts(inputs, samples, boxes), inputs.shape[-2:])
    assert not torch.allclose(moved, expected, atol=1e-2)


def test_random_adapters_break_the_equality(tiny_model_cfg, demo_batch, box_sam):
    """The equality above needs the identity adapters: the authors' random
    initialisation changes the embedding and so the masks."""
    model = bipa_model(tiny_model_cfg, **{'backbone.adapter_init': 'random'})
    data = model.data_preprocessor(demo_batch(), False)
    boxes = boxes_of(data)
    with torch.no_grad():
        ours = model.mask_logits(model.mask_prompts(data['inputs'], data['data_samples'], boxes),
                                 data['inputs'].shape[-2:])
        expected = sam_logits(box_sam, data['inputs'], boxes)
    assert not torch.allclose(ours, expected, atol=1e-2)


def test_box_anchor_trains_the_residual_not_sams_embeddings(tiny_model_cfg, demo_batch):
    model = bipa_model(tiny_model_cfg)
    model.train()
    head = model.roi_head.mask_head
    assert not any(p.requires_grad for p in head.point_embeddings.parameters())
    data = model.data_preprocessor(demo_batch(), True)
    losses = model(**data, mode='loss')
    losses['loss_mask'].backward()
    assert head.residual_scale.grad.abs().sum() > 0  # zero at init, but reached
    assert head.prompt_generator.num_tokens == 2


def test_box_anchor_with_five_tokens_is_refused(tiny_model_cfg):
    with pytest.raises(ValueError, match=r'prompt_generator.num_tokens: anchor=.box.'):
        MODELS.build(tiny_model_cfg(**{'roi_head.mask_head.anchor': 'box',
                                       'roi_head.mask_head.prompt_generator.num_tokens': 5}))


def test_oracle_boxes_at_step_0_are_box_prompted_sam(tiny_model_cfg, demo_batch, box_sam):
    """End to end: BiPA's test-time predictions with the true boxes as
    detections (masks and scores) equal BoxPromptedSAM's at step 0, so the
    two oracle-box segm mAPs are measured alike."""
    cfg = tiny_model_cfg(**{'sam_checkpoint': str(SAM_WEIGHTS),
                            'roi_head.mask_head.anchor': 'box'})
    cfg.test_cfg.oracle_boxes = True
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    batch = demo_batch()
    with torch.no_grad():
        ours = model.test_step(batch)
        theirs = box_sam.test_step(batch)
    for a, b in zip(ours, theirs):
        a, b = a.pred_instances, b.pred_instances
        torch.testing.assert_close(a.bboxes, b.bboxes)
        torch.testing.assert_close(a.scores, b.scores, rtol=1e-4, atol=1e-4)
        assert (a.masks != b.masks).float().mean() < 1e-3  # a few pixels at 0.5 at most
