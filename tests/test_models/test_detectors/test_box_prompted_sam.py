from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config

from bipa.models import load_sam_checkpoint

ROOT = Path(__file__).resolve().parents[3]
SAM_CFG = ROOT / 'configs' / 'sam_vit-tiny_inair.py'


@pytest.fixture
def sam_cfg():
    return Config.fromfile(str(SAM_CFG)).model


def build(cfg, **overrides):
    cfg.update(overrides)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_loss_trains_every_sam_part(sam_cfg, demo_batch):
    torch.manual_seed(0)
    model = build(sam_cfg)
    model.train()
    data = model.data_preprocessor(demo_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_mask', 'loss_dice', 'loss_iou'}
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    for part in ('image_encoder', 'prompt_encoder', 'mask_decoder'):
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for n, p in model.named_parameters() if n.startswith(part)), part


def test_few_steps_lower_the_loss(sam_cfg, demo_batch):
    torch.manual_seed(0)
    model = build(sam_cfg, box_noise=0.0)
    model.train()
    data = model.data_preprocessor(demo_batch(), True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(60):
        loss = sum(model(**data, mode='loss').values())
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.8 * first


def test_batch_without_instances_gives_zero_loss(sam_cfg, demo_batch):
    model = build(sam_cfg)
    data = model.data_preprocessor(demo_batch(num_items=(0, 0)), True)
    losses = model(**data, mode='loss')
    assert all(v.item() == 0 for v in losses.values())
    sum(losses.values()).backward()


def test_checkpoint_loads_into_the_tiny_bipa(sam_cfg, tiny_model_cfg, tmp_path):
    """The pre-trained SAM is BiPA's sam_checkpoint: same keys and shapes."""
    sam = build(sam_cfg)
    path = tmp_path / 'iter_1.pth'
    torch.save(dict(state_dict=sam.state_dict(), meta=dict(iter=1)), path)
    bipa = MODELS.build(tiny_model_cfg())
    report = load_sam_checkpoint(bipa, str(path))  # strict: raises on any mismatch
    assert not any(report.values())
    torch.testing.assert_close(bipa.backbone.encoder.pos_embed, sam.image_encoder.pos_embed)
    torch.testing.assert_close(
        bipa.roi_head.mask_head.mask_decoder.output_upscaling[0].weight,
        sam.mask_decoder.output_upscaling[0].weight)
    torch.testing.assert_close(bipa.roi_head.mask_head.dense_prompt.embedding,
                               sam.prompt_encoder.no_mask_embed.weight.reshape(-1))


def test_predict_segments_the_gt_boxes(sam_cfg, demo_batch):
    model = build(sam_cfg)
    model.eval()
    batch = demo_batch(shapes=((3, 128, 128), (3, 96, 128)), num_items=(3, 0))
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    first, empty = results
    gt = batch['data_samples'][0].gt_instances
    assert first.pred_instances.masks.shape == (3, 128, 128)
    assert first.pred_instances.masks.dtype == torch.bool
    assert torch.equal(first.pred_instances.labels, gt.labels)
    assert ((first.pred_instances.scores >= 0) & (first.pred_instances.scores <= 1)).all()
    assert empty.pred_instances.masks.shape == (0, 96, 128)


def test_predict_needs_annotations(sam_cfg):
    model = build(sam_cfg)
    sample = DetDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128),
                                         scale_factor=(1.0, 1.0)))
    with pytest.raises(ValueError, match='LoadAnnotations'):
        model.predict(torch.zeros(1, 3, 128, 128), [sample])


def test_wrong_input_size_is_refused(sam_cfg):
    model = build(sam_cfg)
    with pytest.raises(ValueError, match='pad_size_divisor=128'):
        model.extract_feat(torch.zeros(1, 3, 96, 128))


def test_batched_decode_equals_segment_anything_per_image(sam_cfg):
    torch.manual_seed(0)
    model = build(sam_cfg)
    model.eval()
    embeddings = torch.randn(2, 32, 16, 16)
    boxes = torch.tensor([[10., 20., 60., 90.], [0., 0., 127., 127.], [30., 5., 50., 40.]])
    img_inds = torch.tensor([1, 0, 1])
    with torch.no_grad():
        masks, iou = model.decode(embeddings, boxes, img_inds)
        for k in range(3):
            sparse, dense = model.prompt_encoder(points=None, boxes=boxes[k:k + 1], masks=None)
            expected, expected_iou = model.mask_decoder(
                image_embeddings=embeddings[img_inds[k]:img_inds[k] + 1],
                image_pe=model.prompt_encoder.get_dense_pe(), sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense, multimask_output=False)
            torch.testing.assert_close(masks[k], expected[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(iou[k], expected_iou[0, 0], rtol=1e-5, atol=1e-5)
