"""The tiny BiPA of configs/bipa_demo_synthetic.py (random weights) on every
available device: ``pytest -m cuda`` runs the CUDA cases, which are skipped
without CUDA. The paper trains in bf16 autocast; mmcv 2.1's RoIAlign has no
bf16 kernel, so the model must hand it float32 levels, on CPU as on CUDA.

The train step runs in bf16 autocast on CUDA and in float32 on CPU: CPU
autocast leaves the RPN's box decoding in bf16 (CUDA autocast runs its
``exp`` in float32, which makes the boxes float32), and mmcv's NMS reads
boxes as float32 only ("expected scalar type Float but found BFloat16")."""
import copy

import pytest
import torch
import torchvision.ops as tv_ops
from mmdet.registry import MODELS
from mmengine.config import Config

from bipa.benchmark import build_synthetic_batch, keep_ratio_shape
from tests.conftest import ROOT

DEVICES = ['cpu', pytest.param('cuda', marks=[
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')])]
# RoIs small enough for the first level (mmdet maps scale < 112 px there)
TRAIN_AUTOCAST = dict(cpu=None, cuda=torch.bfloat16)
ROIS = torch.tensor([[0, 10., 12., 50., 44.], [1, 20., 30., 60., 90.], [1, 3., 3., 20., 11.]])


@pytest.fixture(scope='module')
def demo_model_cfg():
    cfg = Config.fromfile(str(ROOT / 'configs' / 'bipa_demo_synthetic.py')).model
    cfg.sam_checkpoint = None
    return cfg


def build_model(model_cfg, device: str):
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(model_cfg)).to(device)


def demo_batch(model, batch_size: int = 2, **kwargs) -> dict:
    return build_synthetic_batch(batch_size, 128, num_instances=3, seed=1,
                                 num_classes=model.roi_head.bbox_head.num_classes, **kwargs)


@pytest.mark.parametrize('device', DEVICES)
def test_roi_extraction_of_bf16_levels_matches_torchvision(demo_model_cfg, device):
    """Under bf16 autocast, levels that come out of the neck in bf16 reach
    mmcv's RoIAlign as contiguous float32 (the RoI head's cast), which pools
    what torchvision pools."""
    model = build_model(demo_model_cfg, device).eval()
    data = model.data_preprocessor(demo_batch(model), False)
    rois = ROIS.to(device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        feats = model.extract_feat(data['inputs'])
        feats = feats.replace_levels(level.to(torch.bfloat16) for level in feats)
        levels = model.roi_head.add_positional_encoding(feats, data['data_samples'])
        pooled = model.roi_head.mask_roi_extractor(levels[:4], rois)
    assert all(level.dtype == torch.float32 and level.is_contiguous() for level in levels)
    assert pooled.dtype == torch.float32 and pooled.device.type == device
    expected = tv_ops.roi_align(levels[0], rois, 14, 1 / 4, 2, aligned=True)
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('device', DEVICES)
def test_train_step_and_predict_at_original_size(demo_model_cfg, device):
    dtype = TRAIN_AUTOCAST[device]
    model = build_model(demo_model_cfg, device).train()
    seen = {}

    def conv_dtype(module, args, out) -> None:
        seen['rpn_conv'] = out.dtype

    def level_layout(module, args) -> None:
        seen['levels'] = [(f.dtype, f.is_contiguous()) for f in args[0]]
    hooks = [model.rpn_head.rpn_conv.register_forward_hook(conv_dtype),
             model.roi_head.mask_roi_extractor.register_forward_pre_hook(level_layout)]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    data = model.data_preprocessor(demo_batch(model), True)
    with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
        losses = model.loss(data['inputs'], data['data_samples'])
    loss, log_vars = model.parse_losses(losses)  # raises on a non-finite loss
    loss.backward()
    for hook in hooks:
        hook.remove()
    assert seen['rpn_conv'] == (dtype or torch.float32)  # autocast is on where asked
    assert seen['levels'] == [(torch.float32, True)] * 4
    assert log_vars['loss_mask'] > 0
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    # the mask branch's trainables: the generator, or (anchor='box') its
    # residual scale, which is zero at step 0 and so blocks the generator's
    for part in ('backbone.adapters.', 'roi_head.mask_head.'):
        assert any(g.abs().sum() > 0 for name, g in grads.items() if name.startswith(part))
    adapter = next(model.backbone.adapters.parameters())
    before = adapter.detach().clone()
    optimizer.step()
    assert not torch.equal(adapter.detach(), before)

    model.eval()
    ori_shape = (150, 200)
    batch = demo_batch(model, 1, img_shape=keep_ratio_shape(ori_shape, 128), ori_shape=ori_shape)
    with torch.no_grad():
        pred = model.test_step(batch)[0].pred_instances
    assert pred.masks.dtype == torch.bool and pred.masks.device.type == device
    assert tuple(pred.masks.shape) == (len(pred), *ori_shape)
    if len(pred):
        assert float(pred.bboxes[:, 2].max()) <= ori_shape[1] + 1
        assert float(pred.bboxes[:, 3].max()) <= ori_shape[0] + 1
