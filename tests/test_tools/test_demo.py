"""The demo's SAM: the shipped in-air checkpoint, and `tools/demo.py
--rebuild-sam`, each load strictly into the demo's BiPA."""
import textwrap

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from bipa.models import load_sam_checkpoint
from tests.conftest import ROOT, load_tool

SHIPPED = ROOT / 'checkpoints' / 'sam_vit-tiny_inair.pth'


def demo_bipa(checkpoint):
    cfg = Config.fromfile(str(ROOT / 'configs' / 'bipa_demo_synthetic.py'))
    cfg.model.sam_checkpoint = str(checkpoint)
    model = MODELS.build(cfg.model)
    model.init_weights()  # strict: any key or shape mismatch raises
    return model


@pytest.mark.parametrize('checkpoint', [SHIPPED], ids=['shipped'])
def test_shipped_sam_loads_strictly(checkpoint):
    assert checkpoint.stat().st_size < 10 * 2**20
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    model = demo_bipa(checkpoint)
    torch.testing.assert_close(model.backbone.encoder.pos_embed, state['image_encoder.pos_embed'])
    torch.testing.assert_close(model.roi_head.mask_head.mask_decoder.iou_token.weight,
                               state['mask_decoder.iou_token.weight'])
    assert not any(load_sam_checkpoint(model, str(checkpoint)).values())


def test_rebuild_sam_pretrains_a_checkpoint_bipa_loads(tmp_path, monkeypatch):
    demo = load_tool('demo')
    short = tmp_path / 'sam_short.py'
    short.write_text(textwrap.dedent(f'''
        _base_ = ['{ROOT}/configs/sam_vit-tiny_inair.py']
        train_dataloader = dict(batch_size=2)
        train_cfg = dict(max_iters=3)
        param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
        default_hooks = dict(logger=dict(interval=1), visualization=dict(draw=False))
        log_level = 'WARNING'
    '''))
    monkeypatch.setattr(demo, 'SAM_CONFIG', str(short))
    monkeypatch.setattr(demo, 'PRETRAIN', str(tmp_path / 'in_air'))
    monkeypatch.setattr(demo, 'PRETRAIN_DATA', dict(demo.PRETRAIN_DATA,
                                                    splits=dict(train=4, val=2)))
    checkpoint = tmp_path / 'sam' / 'sam.pth'
    metrics = demo.rebuild_sam(str(checkpoint), str(tmp_path / 'work'))
    assert 0 <= metrics['coco/segm_mAP'] <= 1  # oracle-box validation ran, in air
    assert (tmp_path / 'in_air' / 'annotations' / 'train.json').is_file()
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    assert any(k.startswith('mask_decoder.') for k in state)  # SAM's own layout
    model = demo_bipa(checkpoint)
    torch.testing.assert_close(model.backbone.encoder.pos_embed, state['image_encoder.pos_embed'])
