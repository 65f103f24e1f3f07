import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample

TRAINABLE_PREFIXES = ('backbone.adapters.', 'neck.', 'rpn_head.', 'roi_head.bbox_head.',
                      'roi_head.mask_head.prompt_generator.')


def build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def total_loss(losses):
    return sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
               for k, v in losses.items() if 'loss' in k)


@pytest.mark.parametrize('mode', ['frozen', 'naive', 'bilevel'])
def test_trainable_parameters_follow_the_paper(tiny_model_cfg, mode):
    model = build(tiny_model_cfg(**{'roi_head.mask_head.dense_prompt.mode': mode}))
    model.train()
    for name, p in model.named_parameters():
        expected = name.startswith(TRAINABLE_PREFIXES) or (
            mode == 'naive' and name == 'roi_head.mask_head.dense_prompt.embedding')
        assert p.requires_grad == expected, name
    # frozen parts stay in eval mode after model.train()
    assert not model.backbone.encoder.training
    assert not model.roi_head.mask_head.mask_decoder.training
    assert not model.local_backbone.bn1.training


@pytest.mark.parametrize('fusion', ['fai', 'sum'])
@pytest.mark.parametrize('mode', ['frozen', 'naive', 'bilevel'])
def test_loss_keys_finite_and_gradients(tiny_model_cfg, demo_batch, fusion, mode):
    model = build(tiny_model_cfg(**{'neck.fusion': fusion,
                                    'roi_head.mask_head.dense_prompt.mode': mode}))
    model.train()
    data = model.data_preprocessor(demo_batch(), True)
    losses = model(**data, mode='loss')
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    loss = total_loss(losses)
    assert torch.isfinite(loss)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    for name in ('backbone.adapters', 'neck.', 'roi_head.mask_head.prompt_generator'):
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items()
                   if n.startswith(name)), name
    if mode == 'naive':
        assert grads['roi_head.mask_head.dense_prompt.embedding'] is not None


def test_few_steps_lower_the_loss(tiny_model_cfg, demo_batch):
    torch.manual_seed(0)
    model = build(tiny_model_cfg())
    model.train()
    data = model.data_preprocessor(demo_batch(), True)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-3)
    history = []
    for _ in range(6):
        torch.manual_seed(1)  # same proposal sampling every step
        loss = total_loss(model(**data, mode='loss'))
        optim.zero_grad()
        loss.backward()
        optim.step()
        history.append(loss.item())
    assert history[-1] < history[0]


def test_predict_at_original_size(tiny_model_cfg, demo_batch):
    model = build(tiny_model_cfg())
    model.eval()
    packed = demo_batch()
    with torch.no_grad():
        results = model(**model.data_preprocessor(packed, False), mode='predict')
    for sample, result in zip(packed['data_samples'], results):
        assert isinstance(result, DetDataSample)
        pred = result.pred_instances
        n = len(pred)
        assert 0 < n <= 100
        assert pred.masks.shape == (n, *sample.ori_shape) and pred.masks.dtype == torch.bool
        assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n,)
        assert pred.labels.max() < 7


def test_predict_rescales_to_the_original_image(tiny_model_cfg):
    """A resized input (scale 0.5) yields masks and boxes at the original size."""
    from mmdet.testing import demo_mm_inputs
    model = build(tiny_model_cfg())
    model.eval()
    packed = demo_mm_inputs(1, [[3, 64, 96]], with_mask=True)
    sample = packed['data_samples'][0]
    sample.set_metainfo(dict(ori_shape=(128, 192), scale_factor=(0.5, 0.5)))
    with torch.no_grad():
        pred = model(**model.data_preprocessor(packed, False), mode='predict')[0].pred_instances
    assert pred.masks.shape[1:] == (128, 192)
    assert pred.bboxes[:, 2].max() <= 192 + 1e-3


def test_tensor_mode(tiny_model_cfg, demo_batch):
    model = build(tiny_model_cfg())
    model.eval()
    data = model.data_preprocessor(demo_batch(), False)
    with torch.no_grad():
        outs = model(**data, mode='tensor')
    cls_score, bbox_pred, mask_preds = outs[-1]  # RoI head outputs
    assert mask_preds.shape[1:] == (1, 64, 64)  # 4x SAM's 16x16 embedding (8-px patches of 128 px)


def test_images_without_instances(tiny_model_cfg, demo_batch):
    model = build(tiny_model_cfg())
    model.train()
    data = model.data_preprocessor(demo_batch(num_items=(0, 0)), True)
    losses = model(**data, mode='loss')
    loss = total_loss(losses)
    assert torch.isfinite(loss)
    loss.backward()


def test_dense_prompt_api(tiny_model_cfg):
    model = build(tiny_model_cfg())
    prompt = model.dense_prompt
    assert prompt.num_groups == 16 and prompt.search_interval == (1.0, 3.0)
    prompt.set_group_weights(torch.linspace(1, 3, 16))
    state = model.state_dict()
    other = build(tiny_model_cfg())
    other.load_state_dict(state)
    assert torch.equal(other.dense_prompt.get_group_weights(), torch.linspace(1, 3, 16))


def test_trainable_decoder_and_dice_options(tiny_model_cfg, demo_batch):
    """Options for models without SAM weights (the CPU demo); off by default."""
    model = build(tiny_model_cfg(**{
        'roi_head.mask_head.freeze_decoder': False,
        'roi_head.mask_head.loss_dice': dict(type='DiceLoss', use_sigmoid=True,
                                             naive_dice=True)}))
    model.train()
    assert all(p.requires_grad for p in model.roi_head.mask_head.mask_decoder.parameters())
    losses = model(**model.data_preprocessor(demo_batch(), True), mode='loss')
    assert 0 < losses['loss_dice'] <= 1 and torch.isfinite(losses['loss_mask'])
    total_loss(losses).backward()
    assert model.roi_head.mask_head.mask_decoder.mask_tokens.weight.grad is not None


def test_rpn_box_loss_is_the_authors_smooth_l1_and_switchable(tiny_model_cfg, demo_batch):
    from mmdet.models.losses import L1Loss, SmoothL1Loss
    default = MODELS.build(tiny_model_cfg())
    assert type(default.rpn_head.loss_bbox) is SmoothL1Loss
    assert default.rpn_head.loss_bbox.beta == 1.0
    l1 = MODELS.build(tiny_model_cfg(**{'rpn_head.loss_bbox': dict(_delete_=True, type='L1Loss')}))
    assert type(l1.rpn_head.loss_bbox) is L1Loss
    l1.load_state_dict(default.state_dict())
    data = default.data_preprocessor(demo_batch(), True)
    torch.manual_seed(0)
    a = default.loss(data['inputs'], data['data_samples'])['loss_rpn_bbox']
    torch.manual_seed(0)
    b = l1.loss(data['inputs'], data['data_samples'])['loss_rpn_bbox']
    assert not torch.allclose(sum(a), sum(b))


def test_oracle_boxes_segment_the_ground_truth_boxes(tiny_model_cfg, demo_batch):
    """test_cfg.oracle_boxes: the detections are the GT boxes (at the original
    scale, as CocoMetric reads them) with their labels, scored by the
    decoder's IoU prediction, and the masks are the mask branch's for them."""
    cfg = tiny_model_cfg()
    cfg.test_cfg.oracle_boxes = True
    model = build(cfg).eval()
    batch = demo_batch()
    for sample in batch['data_samples']:  # a resized input: GT stays at the original scale
        sample.set_metainfo(dict(scale_factor=(1.0, 1.0)))
    data = model.data_preprocessor(batch, False)
    out = model.predict(data['inputs'], data['data_samples'])
    for sample, result in zip(data['data_samples'], out):
        pred, gt = result.pred_instances, sample.gt_instances
        torch.testing.assert_close(pred.bboxes, gt.bboxes.float())
        assert torch.equal(pred.labels, gt.labels)
        assert torch.all((pred.scores >= 0) & (pred.scores <= 1))
        assert pred.masks.shape == (len(gt), *sample.metainfo['ori_shape'][:2])
    with torch.no_grad():
        prompts = model.mask_prompts(data['inputs'], data['data_samples'],
                                     [s.gt_instances.bboxes.float() for s in data['data_samples']])
        logits = model.mask_logits(prompts, data['inputs'].shape[-2:])
    first = out[0].pred_instances.masks
    h, w = first.shape[-2:]
    assert torch.equal(first, logits[:len(first), :h, :w].sigmoid() >= 0.5)
    for sample in data['data_samples']:
        del sample.gt_instances
    with pytest.raises(ValueError, match='oracle_boxes=True needs the ground truth'):
        model.predict(data['inputs'], data['data_samples'])
