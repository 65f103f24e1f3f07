"""Lean checkpoints: the frozen weights that the config's files supply (SAM's,
a pre-trained local backbone's) stay out of every checkpoint, and come back
from those files, checked to be the same, wherever a checkpoint is loaded."""
import os
import shutil
import subprocess

import pytest
import torch
from mmdet.registry import MODELS

from bipa.apis import build_inferencer, run_cli
from bipa.models.frozen_weights import FROZEN_META, file_fingerprint
from tests.conftest import ROOT, Killed, load_tool
from tests.test_engine.conftest import KillAt, assert_same_weights, make_loop_cfg, run_loop

SAM = ROOT / 'checkpoints' / 'sam_vit-tiny_inair.pth'


def lean_cfg(data_root, work_dir, resnet):
    """The tiny loop with SAM's weights and a pre-trained local backbone from
    file, its stem and first stage frozen (the demo trains it all); checkpoints
    only at the end and before each search, one kept."""
    cfg = make_loop_cfg(data_root, work_dir)
    cfg.model.sam_checkpoint = str(SAM)
    cfg.model.local_backbone.update(
        frozen_stages=1, init_cfg=dict(type='Pretrained', checkpoint=str(resnet)))
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1
    return cfg


@pytest.fixture(scope='module')
def resnet(tiny_data, tmp_path_factory):
    """A 'pre-trained' local backbone file (the tiny ResNet, seeded)."""
    cfg = make_loop_cfg(tiny_data, tmp_path_factory.mktemp('unused'))
    torch.manual_seed(7)
    backbone = MODELS.build(cfg.model.local_backbone)
    path = tmp_path_factory.mktemp('weights') / 'resnet_tiny.pth'
    torch.save(dict(state_dict=backbone.state_dict()), path)
    return path


@pytest.fixture(scope='module')
def lean_run(tiny_data, resnet, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('lean')
    runner = run_loop(lean_cfg(tiny_data, work_dir, resnet))
    runner.config_file = work_dir / 'lean_cfg.py'
    # every detection kept: the 6-iteration model scores below mmdet's 0.05
    runner.cfg.model.test_cfg.rcnn.score_thr = 0.0
    runner.cfg.dump(str(runner.config_file))
    return runner


def frozen_names(model):
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def test_a_checkpoint_leaves_out_what_the_files_supply(lean_run, resnet):
    work_dir = lean_run.work_dir
    checkpoint = torch.load(os.path.join(work_dir, 'iter_6.pth'), weights_only=False)
    state, record = checkpoint['state_dict'], checkpoint['meta'][FROZEN_META]
    model = lean_run.model
    sam = set(record['model.sam_checkpoint']['names'])
    local = set(record['model.local_backbone.init_cfg.checkpoint']['names'])
    assert sam and all(n.startswith(('backbone.encoder.', 'roi_head.mask_head.')) for n in sam)
    assert local == {n for n in frozen_names(model) if n.startswith('local_backbone.')}
    assert 'local_backbone.layer1.0.conv1.weight' in local
    assert 'local_backbone.layer2.0.conv1.weight' in state  # trained
    # every frozen parameter a file supplies is left out, nothing else
    assert not (sam | local) & set(state)
    assert set(state) | sam | local == set(model.state_dict())
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained <= set(state) and 'roi_head.mask_head.dense_prompt.group_weights' in state
    for key, path in (('model.sam_checkpoint', SAM),
                      ('model.local_backbone.init_cfg.checkpoint', resnet)):
        assert record[key]['path'] == str(path)
        assert {k: record[key][k] for k in ('size', 'fingerprint')} == file_fingerprint(path)


def test_pre_search_checkpoints_count_toward_max_keep_ckpts(lean_run):
    # rounds end at iterations 2 and 4 (a checkpoint before each search), the run at 6
    assert sorted(f for f in os.listdir(lean_run.work_dir) if f.endswith('.pth')) == \
        ['iter_6.pth']


def test_tools_load_a_lean_checkpoint_whole(lean_run, tmp_path):
    """tools/test.py and the inferencer get the frozen weights back from the
    files: the same metrics and weights as a checkpoint holding them all."""
    test = load_tool('test')
    lean = os.path.join(lean_run.work_dir, 'iter_6.pth')
    whole = tmp_path / 'whole.pth'
    checkpoint = torch.load(lean, weights_only=False)
    del checkpoint['meta'][FROZEN_META]
    checkpoint['state_dict'] = lean_run.model.state_dict()
    torch.save(checkpoint, whole)
    metrics = [test.main([str(lean_run.config_file), str(path), '--work-dir',
                          str(tmp_path / name)])
               for name, path in (('lean', lean), ('whole', whole))]
    assert metrics[0] == metrics[1] and 'coco/segm_mAP' in metrics[0]
    inferencer = build_inferencer(str(lean_run.config_file), lean, show_progress=False)
    for name, value in lean_run.model.state_dict().items():
        assert torch.equal(inferencer.model.state_dict()[name], value), name


def test_a_lean_checkpoint_with_another_sam_file_is_refused(lean_run, tmp_path, capsys):
    other = tmp_path / 'other_sam.pth'
    state = torch.load(SAM, weights_only=True)
    key = next(k for k in state if k.startswith('image_encoder.'))
    state[key] = state[key] + 1
    torch.save(state, other)
    lean = os.path.join(lean_run.work_dir, 'iter_6.pth')
    code = run_cli(load_tool('test').main, [
        str(lean_run.config_file), lean, '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', f'model.sam_checkpoint={other}'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f'trained with model.sam_checkpoint = {SAM}' in err[0] and str(other) in err[0]


def test_resume_from_a_lean_checkpoint_is_bitwise(lean_run, tiny_data, resnet, tmp_path):
    # killed in round 2 (iteration 3): the resume loads round 1's pre-search checkpoint
    work_dir = tmp_path / 'work'
    with pytest.raises(Killed):
        run_loop(lean_cfg(tiny_data, work_dir, resnet), KillAt(3))
    assert sorted(f for f in os.listdir(work_dir) if f.endswith('.pth')) == ['iter_2.pth']
    # what a process killed while writing iter_4.pth leaves: removed at the next start
    gone = subprocess.Popen(['true'])
    gone.wait()
    stale = work_dir / f'.iter_4.pth.{gone.pid}.tmp'
    stale.write_bytes(b'half a checkpoint')
    cfg = lean_cfg(tiny_data, work_dir, resnet)
    cfg.resume = True
    assert_same_weights(lean_run, run_loop(cfg))
    assert not stale.exists()


def test_a_moved_sam_file_with_the_same_content_is_accepted(lean_run, tmp_path):
    moved = tmp_path / 'sam_moved.pth'
    shutil.copy(SAM, moved)
    lean = os.path.join(lean_run.work_dir, 'iter_6.pth')
    metrics = load_tool('test').main([str(lean_run.config_file), lean, '--work-dir',
                                      str(tmp_path / 'work'), '--cfg-options',
                                      f'model.sam_checkpoint={moved}'])
    assert 'coco/segm_mAP' in metrics


@pytest.mark.parametrize('half', [False, True])
def test_a_published_checkpoint_is_self_contained(lean_run, tmp_path, half):
    """publish_checkpoint.py writes every weight: it loads without the SAM file
    (another one in the config), as the lean one with the file does."""
    publish = load_tool('model_converters/publish_checkpoint').main
    lean = os.path.join(lean_run.work_dir, 'iter_6.pth')
    path = publish([str(lean_run.config_file), lean, str(tmp_path / 'bipa.pth')]
                   + ['--half'] * half)
    assert os.path.basename(path).startswith('bipa-') and os.listdir(tmp_path) == [
        os.path.basename(path)]
    published = torch.load(path, weights_only=False)
    assert FROZEN_META not in published['meta'] and 'optimizer' not in published
    model = lean_run.model.state_dict()
    assert published['state_dict'].keys() == model.keys()
    for name, value in model.items():
        stored = published['state_dict'][name]
        assert stored.dtype == (torch.float16 if half and value.is_floating_point()
                                else value.dtype), name
        assert torch.equal(stored, value.to(stored.dtype)), name
    if not half:
        other = tmp_path / 'other_sam.pth'
        state = torch.load(SAM, weights_only=True)
        torch.save({k: v + 1 for k, v in state.items()}, other)
        metrics = [load_tool('test').main([str(lean_run.config_file), p, '--work-dir',
                                           str(tmp_path / name), '--cfg-options',
                                           f'model.sam_checkpoint={sam}'])
                   for name, p, sam in (('lean', lean, SAM), ('published', path, other))]
        assert metrics[0] == metrics[1] and 'coco/segm_mAP' in metrics[0]
