"""mmdet builds a tiny Mask R-CNN on this stack and computes finite losses."""
from pathlib import Path

import mmdet
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config


def test_tiny_mask_rcnn_losses_are_finite():
    register_all_modules()
    configs = Path(mmdet.__file__).parent / '.mim' / 'configs'
    cfg = Config.fromfile(configs / 'mask_rcnn' / 'mask-rcnn_r50_fpn_1x_coco.py').model
    cfg.backbone.depth = 18
    cfg.backbone.init_cfg = None
    cfg.neck.in_channels = [64, 128, 256, 512]
    model = MODELS.build(cfg)
    torch.manual_seed(0)
    packed = demo_mm_inputs(2, [[3, 64, 64], [3, 64, 64]], num_items=[3, 2], with_mask=True)
    data = model.data_preprocessor(packed, training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
