"""The demo's SAM: the shipped in-air checkpoint, and `tools/demo.py
--rebuild-sam`, each load strictly into the demo's BiPA; the demo's output:
a short story, and everything with --verbose."""
import textwrap
import warnings

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from bipa.models import load_sam_checkpoint
from tests.conftest import ROOT, event_scalars, load_tool

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


def run_demo(demo, capsys, *args) -> list:
    """The lines ``demo.main(args)`` prints on stdout and stderr, with the
    warnings that ``python tools/demo.py`` would print (pytest records them)."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('default')  # Python's default filters, not pytest's
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                         ResourceWarning):
            warnings.simplefilter('ignore', category)
        demo.main(list(args))
    out = capsys.readouterr()
    shown = ''.join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
                    for w in shown)
    return (out.out + out.err + shown).splitlines()


def test_demo_prints_its_story_in_under_80_lines(tmp_path, monkeypatch, capsys):
    """The whole demo, data generation included, on 6/2/2 images and 3
    iterations: its steps, a line per tenth of training and the four result
    sections; pycocotools, the runners' INFO logs and mmengine's known-harmless
    warnings only with --verbose (the training log file keeps its INFO)."""
    demo = load_tool('demo')
    short = tmp_path / 'demo_short.py'
    short.write_text(textwrap.dedent(f'''
        _base_ = ['{ROOT}/configs/bipa_demo_synthetic.py']
        train_dataloader = dict(batch_size=2)
        model = dict(data_preprocessor=dict(pad_size_divisor=64))
        train_cfg = dict(T=1, K_a=2, K_b=2, K_c=1, holdout=dict(_delete_=True, count=2, seed=0),
                         search=dict(batch_size=2))
        default_hooks = dict(logger=dict(interval=1), visualization=dict(draw=False))
    '''))
    monkeypatch.setattr(demo, 'CONFIG', str(short))
    monkeypatch.setattr(demo, 'DATA', str(tmp_path / 'underwater'))
    monkeypatch.setattr(demo, 'IN_AIR', str(tmp_path / 'in_air'))
    monkeypatch.setattr(demo, 'SPLITS', dict(train=6, val=2, test=2))

    lines = run_demo(demo, capsys, '--work-dir', str(tmp_path / 'quiet'))
    text = '\n'.join(lines)
    assert len(lines) < 80, text
    for section in ('[demo] 1. the domain gap', '[demo] 2. the prompt search',
                    '[demo] 3. BiPA on the underwater test split', '[demo] 4. masks given',
                    '[demo] done in'):
        assert section in text
    assert '[demo]   100%  iteration 3/3 (finetune), loss' in text
    assert '\r' not in text
    for noise in ('Average Precision', 'loading annotations', 'mmengine - INFO',
                  'get_instance', 'FileClient'):
        assert noise not in text, noise
    command = lines[-1].split(': ', 1)[1]
    assert command.startswith('tensorboard --logdir ')
    scalars = event_scalars(command.split(' --logdir ')[1])
    assert {'loss', 'lr', 'search/f', 'search/best_f', 'rho/group_00'} <= set(scalars)
    # (a runner started in the same second as the previous one shares its log file)
    assert any('Iter(train) [3/3]' in log.read_text() for log in tmp_path.glob('quiet/**/*.log'))

    verbose = run_demo(demo, capsys, '--work-dir', str(tmp_path / 'verbose'), '--verbose')
    assert len(verbose) > len(lines)
    text = '\n'.join(verbose)
    # (not the training runner's INFO logs: when it starts in the second the runner
    # before it started, it logs through that runner's WARNING logger; nor
    # mmengine's get_instance warning, which only runners of one second give)
    for noise in ('Average Precision', 'loading annotations'):
        assert noise in text, noise
