"""tools/demo.py's SAM step: pre-trains the tiny SAM once, into a checkpoint
that the demo's BiPA config loads as its sam_checkpoint."""
import textwrap

import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from bipa.datasets import generate_synthetic_dataset
from bipa.models import load_sam_checkpoint
from tests.conftest import ROOT, load_tool


def test_ensure_sam_pretrains_once_and_bipa_loads_it(tmp_path, monkeypatch):
    demo = load_tool('demo')
    data = tmp_path / 'data'
    generate_synthetic_dataset(str(data), splits=dict(train=6, val=2, test=2),
                               image_size=(128, 128), seed=3, progress=False)
    short = tmp_path / 'sam_short.py'
    short.write_text(textwrap.dedent(f'''
        _base_ = ['{ROOT}/configs/sam_vit-tiny_synthetic.py']
        train_dataloader = dict(batch_size=2)
        train_cfg = dict(max_iters=3)
        param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
        default_hooks = dict(logger=dict(interval=1), visualization=dict(draw=False))
        log_level = 'WARNING'
    '''))
    monkeypatch.setattr(demo, 'DATA', str(data))
    monkeypatch.setattr(demo, 'SAM_CONFIG', str(short))

    checkpoint = tmp_path / 'sam' / 'sam_vit-tiny_synthetic.pth'
    metrics = demo.ensure_sam(str(tmp_path / 'sam'), str(checkpoint))
    assert 0 <= metrics['coco/segm_mAP'] <= 1  # oracle-box validation ran
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    assert any(k.startswith('mask_decoder.') for k in state)  # SAM's own layout

    cfg = Config.fromfile(str(ROOT / 'configs' / 'bipa_demo_synthetic.py'))
    cfg.model.sam_checkpoint = str(checkpoint)
    model = MODELS.build(cfg.model)
    model.init_weights()  # strict: any key or shape mismatch raises
    torch.testing.assert_close(model.backbone.encoder.pos_embed,
                               state['image_encoder.pos_embed'])
    assert not any(load_sam_checkpoint(model, str(checkpoint)).values())

    mtime = checkpoint.stat().st_mtime_ns
    assert demo.ensure_sam(str(tmp_path / 'sam'), str(checkpoint)) == {}  # kept, not retrained
    assert checkpoint.stat().st_mtime_ns == mtime
