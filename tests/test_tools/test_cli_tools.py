"""The command-line tools (tools/infer.py, test.py, browse_dataset.py), run
in-process on a tiny synthetic dataset with a randomly initialised demo model."""
import glob
import json
import os
import shutil
import subprocess
import sys
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from bipa.apis import run_cli, use_data_root
from bipa.datasets import SYNTHETIC_CLASSES, SyntheticUnderwaterDataset, holdout_image_ids
from tests.conftest import DEMO_CFG, ROOT, load_tool, run_tool

CONFIG = str(DEMO_CFG)


@pytest.fixture(scope='module')
def tools():
    return {n: load_tool(n) for n in ('infer', 'test', 'browse_dataset')}


def config_on(root, folder):
    """The demo config pointed at the data at ``root``, written to ``folder``."""
    path = folder / 'demo_on_data.py'
    use_data_root(Config.fromfile(CONFIG), str(root)).dump(str(path))
    return path


@pytest.fixture(scope='module')
def data_cfg(tiny_data, tmp_path_factory):
    return config_on(tiny_data, tmp_path_factory.mktemp('cfg'))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """The demo model, untrained, saved with the dataset meta as mmengine does."""
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('ckpt') / 'bipa_demo_random.pth'
    meta = dict(dataset_meta=dict(classes=SYNTHETIC_CLASSES,
                                  palette=SyntheticUnderwaterDataset.METAINFO['palette']))
    torch.save(dict(meta=meta, state_dict=model.state_dict()), path)
    return path


# --- tools/infer.py --------------------------------------------------------

def test_infer_non_square_image(tools, checkpoint, tiny_data, tmp_path):
    img = cv2.imread(str(tiny_data / 'test' / '000000.jpg'))
    img = cv2.resize(img, (170, 100))  # H x W = 100 x 170
    img_path = tmp_path / 'wide.png'
    cv2.imwrite(str(img_path), img)
    out = tmp_path / 'out'

    records = run_tool(tools['infer'], CONFIG, checkpoint, img_path, '--out-dir', out,
                   '--score-thr', 0)

    vis = cv2.imread(str(out / 'vis' / 'wide.png'))
    assert vis is not None and vis.shape == (100, 170, 3)
    assert (out / 'preds' / 'wide.json').is_file()
    saved = json.loads((out / 'predictions.json').read_text())
    assert saved == records and len(saved) == 1
    assert saved[0]['image'] == str(img_path)
    instances = saved[0]['instances']
    assert instances  # a random model still scores above 0
    for inst in instances:
        assert inst['class'] == SYNTHETIC_CLASSES[inst['label']]
        x1, y1, x2, y2 = inst['bbox']
        assert 0 <= x1 <= x2 <= 170 and 0 <= y1 <= y2 <= 100
        assert inst['mask']['size'] == [100, 170]
        assert isinstance(inst['mask']['counts'], str) and 0 < inst['score'] <= 1


def test_infer_glob(tools, checkpoint, tiny_data, tmp_path):
    out = tmp_path / 'out'
    pattern = str(tiny_data / 'val' / '00000[0].jpg')
    records = run_tool(tools['infer'], CONFIG, checkpoint, pattern, '--out-dir', out,
                   '--score-thr', 0.9)
    assert [r['image'] for r in records] == [str(tiny_data / 'val' / '000000.jpg')]
    assert all(i['score'] > 0.9 for i in records[0]['instances'])
    assert cv2.imread(str(out / 'vis' / '000000.jpg')).shape == (64, 64, 3)


def test_infer_expand_inputs(tools, tiny_data):
    expand = tools['infer'].expand_inputs
    val = tiny_data / 'val'
    folder = expand([str(val)])
    assert folder == [str(val / f'{i:06d}.jpg') for i in range(2)]
    # files, folders and patterns mix; repeats are dropped
    assert expand([folder[1], str(val / '*.jpg')]) == [folder[1], folder[0]]
    assert expand([str(tiny_data / '**' / '000001.jpg')]) == [
        str(tiny_data / s / '000001.jpg') for s in ('test', 'train', 'val')]


def test_infer_pattern_without_match(tools, checkpoint, tmp_path):
    pattern = str(tmp_path / 'nothing_*.jpg')
    with pytest.raises(FileNotFoundError, match='nothing_'):
        run_tool(tools['infer'], CONFIG, checkpoint, pattern, '--out-dir', tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        run_tool(tools['infer'], CONFIG, checkpoint, tmp_path / 'missing.jpg')


# --- tools/test.py ---------------------------------------------------------

def test_test_tool_evaluates(tools, checkpoint, data_cfg, tmp_path, monkeypatch):
    # as in a fresh `python tools/test.py`: no registry scope set yet (the
    # dataset check before the Runner must set mmdet's itself)
    DefaultScope.get_instance(f'fresh-{tmp_path.name}', scope_name='mmengine')
    monkeypatch.delenv('PYTORCH_CUDA_ALLOC_CONF', raising=False)
    out_pkl = tmp_path / 'results.pkl'
    metrics = run_tool(tools['test'], data_cfg, checkpoint, '--work-dir', tmp_path / 'work',
                   '--out', out_pkl)
    assert isinstance(metrics, dict)
    assert 'coco/segm_mAP' in metrics and 'coco/bbox_mAP' in metrics
    assert out_pkl.is_file()
    # env_cfg.cuda_alloc_conf of the runtime base, applied before the Runner and logged
    log, = glob.glob(str(tmp_path / 'work' / '*' / '*.log'))
    assert 'CUDA caching allocator: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True' in \
        open(log).read()


def test_test_tool_missing_checkpoint(tools, tmp_path):
    missing = tmp_path / 'no_such_checkpoint.pth'
    with pytest.raises(FileNotFoundError, match='no_such_checkpoint.pth'):
        run_tool(tools['test'], CONFIG, missing, '--work-dir', tmp_path / 'work')
    assert not (tmp_path / 'work').exists()  # failed before building the runner


def test_test_tool_show_dir_config(tools, checkpoint):
    test = tools['test']
    args = test.parse_args([CONFIG, str(checkpoint), '--show-dir', 'painted'])
    cfg = test.build_cfg(args)
    hook = cfg.default_hooks.visualization
    assert hook.draw is True and hook.test_out_dir == 'painted'
    assert cfg.load_from == str(checkpoint)


# --- tools/browse_dataset.py -----------------------------------------------

@pytest.mark.parametrize('split, size', [('train', 128), ('val', 64)])
def test_browse_dataset(tools, data_cfg, tmp_path, split, size):
    out = tmp_path / 'browse'
    n = run_tool(tools['browse_dataset'], data_cfg, '--split', split, '--not-show',
             '--output-dir', out, '--max-images', 2)
    files = sorted(out.iterdir())
    assert n == 2 and len(files) == 2
    # train: the pipeline's 128x128 image; val/test load the annotations after
    # the resize, so they are drawn on the original 64x64 image
    assert all(cv2.imread(str(f)).shape == (size, size, 3) for f in files)


# --- bad input: one line, exit 2 -------------------------------------------

def _cli(tool, *args):
    return run_cli(tool.main, [str(a) for a in args])


def _error_lines(capsys):
    """The ``error:`` lines on stderr (in-process, mmengine's logger may also
    complain there about an earlier test's closed stream)."""
    err = capsys.readouterr().err
    for name in ('ConfigError', 'AnnotationError', 'SAMCheckpointError', 'ImageReadError'):
        assert name not in err  # no traceback of ours
    return [line for line in err.splitlines() if line.startswith('error: ')]


def _edited_copy(tiny_data, tmp_path, split, fn):
    """The demo config on a copy of the data whose ``split`` annotations ``fn``
    edited."""
    root = tmp_path / 'data'
    shutil.copytree(tiny_data, root)
    path = root / 'annotations' / f'{split}.json'
    coco = json.loads(path.read_text())
    fn(coco)
    path.write_text(json.dumps(coco))
    return config_on(root, tmp_path)


def test_test_tool_refuses_a_sam_checkpoint(tools, data_cfg, tmp_path, capsys):
    sam = MODELS.build(dict(type='BoxPromptedSAM', arch=Config.fromfile(CONFIG).model
                            .backbone.arch, decoder_mlp_dim=64, decoder_num_heads=2))
    path = tmp_path / 'sam.pth'
    torch.save(sam.state_dict(), path)
    code = _cli(tools['test'], data_cfg, path, '--work-dir', tmp_path / 'work')
    err = _error_lines(capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f'error: {path} does not fit the model: ')
    assert 'missing' in err[0] and 'unexpected' in err[0] and "SAM's own keys" in err[0]
    assert '--allow-partial' in err[0]


def test_test_tool_refuses_random_bytes(tools, data_cfg, tmp_path, capsys):
    path = tmp_path / 'random.pth'
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    code = _cli(tools['test'], data_cfg, path, '--work-dir', tmp_path / 'work')
    err = capsys.readouterr().err
    assert code == 2 and f'error: {path}: not a checkpoint torch can read' in err
    with pytest.raises(Exception, match='not a checkpoint torch can read'):
        _cli(tools['test'], data_cfg, path, '--work-dir', tmp_path / 'work', '--debug')


def test_test_split_without_instances_is_refused_before_inference(tools, checkpoint, tiny_data,
                                                                  tmp_path, capsys):
    cfg = _edited_copy(tiny_data, tmp_path, 'test', lambda c: c.update(annotations=[]))
    with mock.patch('mmengine.runner.Runner.test', side_effect=AssertionError('inference')):
        code = _cli(tools['test'], cfg, checkpoint, '--work-dir', tmp_path / 'work')
    err = capsys.readouterr().err
    assert code == 2 and 'test.json: the split holds no instance to evaluate' in err


def test_annotations_the_evaluator_would_score_but_the_dataset_skips(tools, checkpoint,
                                                                     tiny_data, tmp_path, capsys):
    def empty_mask(coco):
        coco['annotations'][1]['segmentation'] = []
    cfg = _edited_copy(tiny_data, tmp_path, 'test', empty_mask)
    with mock.patch('mmengine.runner.Runner.test', side_effect=AssertionError('inference')):
        code = _cli(tools['test'], cfg, checkpoint, '--work-dir', tmp_path / 'work')
    err = capsys.readouterr().err
    assert code == 2 and 'CocoMetric would score annotations the dataset skips: ids 2 ' \
                         '(empty mask)' in err


def test_infer_skips_unreadable_images_and_fails_at_the_end(tools, checkpoint, tiny_data,
                                                            tmp_path, capsys):
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in ('000000.jpg', '000001.jpg'):
        shutil.copy(tiny_data / 'test' / name, folder / name)
    (folder / '000002.jpg').write_bytes(b'not an image')
    out = tmp_path / 'out'
    with pytest.warns(UserWarning, match='000002.jpg: cannot be read as an image'):
        code = _cli(tools['infer'], CONFIG, checkpoint, folder, '--out-dir', out)
    assert code == 2
    assert '1 of 3 inputs could not be read' in capsys.readouterr().err
    records = json.loads((out / 'predictions.json').read_text())
    assert [r['image'].rsplit('/', 1)[-1] for r in records] == ['000000.jpg', '000001.jpg']


def test_train_names_an_unreadable_sam_checkpoint(data_cfg, tmp_path, capsys):
    train = load_tool('train')
    path = tmp_path / 'sam.pth'
    path.write_bytes(b'\x00' * 100)
    code = _cli(train, data_cfg, '--work-dir', tmp_path / 'work', '--cfg-options',
                f'model.sam_checkpoint={path}')
    err = _error_lines(capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f'error: {path}: not a checkpoint torch can read')


@pytest.mark.parametrize('option, message', [
    ('model.roi_head.mask_head.dense_prompt.search_interval=(3.0,1.0)',
     'error: model.roi_head.mask_head.dense_prompt.search_interval B=[3.0, 1.0] needs low < high'),
    ("train_cfg.search.sampeler='gp'",
     "error: train_cfg.search.sampeler: unknown key; train_cfg.search has unknown key(s) "
     "['sampeler'] and takes: pipeline, batch_size,"),
    ("model.neck.multiscale_conv='separable'",
     "error: model.neck.multiscale_conv must be one of ('full', 'depthwise')"),
])
def test_config_errors_name_the_full_key_on_one_line(data_cfg, tmp_path, capsys, option,
                                                     message):
    code = _cli(load_tool('train'), data_cfg, '--work-dir', tmp_path / 'work', '--cfg-options',
                option, 'model.sam_checkpoint=None')
    lines = _error_lines(capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(message), lines


# a typo at each depth: the loop, the model, a module its parent builds, a transform
TYPOS = [
    ('train_cfg.K_x=3', "train_cfg.K_x: unknown key; train_cfg has unknown key(s) ['K_x'] "
     'and takes: T, K_a, K_b, K_c, unit,'),
    ('model.backbone.adpter_init=identity',
     'model.backbone.adpter_init: unknown key; SAMViTAdapter takes: arch,'),
    ('model.roi_head.mask_head.dense_prompt.num_group=8',
     'model.roi_head.mask_head.dense_prompt.num_group: unknown key; DensePrompt takes: '
     'embed_dim, num_groups,'),
    ('train_dataloader.dataset.pipeline.2.prob2=0.5',  # RandomFlip
     'train_dataloader.dataset.pipeline.2.prob2: unknown key; RandomFlip takes: prob,'),
]


def _one_error_line(capsys) -> str:
    """stderr, which must be one ``error:`` line (nothing on stdout)."""
    out, err = capsys.readouterr()
    assert out == '' and len(err.splitlines()) == 1, err[-3000:]
    return err.splitlines()[0]


@pytest.mark.parametrize('option, message', TYPOS, ids=[t[0].split('=')[0] for t in TYPOS])
def test_train_unknown_key_is_one_line(data_cfg, tmp_path, capsys, option, message):
    with mock.patch('mmengine.runner.Runner.__init__', side_effect=AssertionError('built')):
        code = _cli(load_tool('train'), data_cfg, '--work-dir', tmp_path / 'work',
                    '--cfg-options', option)
    line = _one_error_line(capsys)
    assert code == 2 and line.startswith(f'error: {message}'), line
    assert line.endswith('(--debug shows the traceback)')


def _truncated_checkpoint(folder):
    path = folder / 'cut.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1000))), path)
    os.truncate(path, path.stat().st_size // 2)
    return path


@pytest.mark.parametrize('case', ['load_from', 'work_dir', 'amp', 'type', 'under_none'])
def test_bad_run_inputs_are_one_line_before_the_runner(data_cfg, tmp_path, capsys, case):
    """Each stopped before the model is built (the Runner is not)."""
    args, message = dict(
        load_from=(['--cfg-options', f'load_from={_truncated_checkpoint(tmp_path)}'],
                   f'load_from: {tmp_path / "cut.pth"} is truncated or damaged '
                   f'({(tmp_path / "cut.pth").stat().st_size} bytes: File is not a zip file); '
                   'expected a checkpoint saved by tools/train.py'),
        work_dir=(['--work-dir', '/sys/bipa_work'],
                  'work dir /sys/bipa_work cannot be written (Operation not permitted): choose '
                  'another with --work-dir'),
        amp=(['--cfg-options', 'optim_wrapper.type=AmpOptimWrapper'],
             "optim_wrapper.type='AmpOptimWrapper' (mixed precision) needs a GPU and this "
             'machine has none: pass --no-amp to train in float32'),
        type=(['--cfg-options', 'model.neck.type=FAINek'],
              "model.neck.type: 'FAINek' is not registered; did you mean 'FAINeck'?"),
        under_none=(['--cfg-options', 'model.local_backbone.init_cfg.checkpoint=r50.pth'],
                    "--cfg-options: init_cfg={'checkpoint': 'r50.pth'} in child config cannot "
                    'inherit from base because init_cfg is a dict in the child config but is of '
                    "type <class 'NoneType'> in base config. You may set `_delete_=True` to "
                    'ignore the base config. (e.g. KEY._delete_=True KEY.type=...)'),
    )[case]
    if '--work-dir' not in args:
        args += ['--work-dir', str(tmp_path / 'work')]
    with mock.patch('mmengine.runner.Runner.__init__', side_effect=AssertionError('built')):
        code = _cli(load_tool('train'), data_cfg, *args)
    line = _one_error_line(capsys)
    assert code == 2 and line == f'error: {message} (--debug shows the traceback)', line


def test_a_holdout_that_empties_a_side_is_one_line(capsys):
    def main(argv):
        holdout_image_ids(range(10), count=10)
    assert run_cli(main, []) == 2 and _error_lines(capsys) == [
        'error: train_cfg.holdout: cannot hold out 10 of 10 training images: need at least one '
        'on each side (more training images, or another fraction or count) (--debug shows the '
        'traceback)']


def test_no_amp_switches_a_config_with_amp_to_float32(data_cfg, tmp_path):
    train = load_tool('train')
    args = train.parse_args([str(data_cfg), '--work-dir', str(tmp_path), '--no-amp',
                             '--cfg-options', 'optim_wrapper.type=AmpOptimWrapper',
                             'optim_wrapper.dtype=bfloat16', 'optim_wrapper.loss_scale=512'])
    wrapper = train.build_cfg(args).optim_wrapper
    assert wrapper.type == 'OptimWrapper' and 'dtype' not in wrapper \
        and 'loss_scale' not in wrapper and wrapper.optimizer.type == 'AdamW'


def test_test_tool_unknown_key_is_one_line(tools, data_cfg, checkpoint, tmp_path, capsys):
    option, message = TYPOS[2]
    with mock.patch('mmengine.runner.Runner.__init__', side_effect=AssertionError('built')):
        code = _cli(tools['test'], data_cfg, checkpoint, '--work-dir', tmp_path / 'work',
                    '--cfg-options', option)
    line = _one_error_line(capsys)
    assert code == 2 and line.startswith(f'error: {message}'), line


def test_train_unknown_key_as_a_user_runs_it(tmp_path):
    """The command of the report, as a process: exit 2, one line, no config dump."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'train.py'), CONFIG, '--work-dir',
         str(tmp_path / 'work'), '--cfg-options', 'train_cfg.K_x=3'],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 2 and proc.stdout == '', proc.stdout[-2000:]
    assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr[-3000:]
    assert proc.stderr.startswith(f'error: {TYPOS[0][1]}')


def test_infer_refuses_a_checkpoint_that_does_not_fit(tools, tiny_data, tmp_path, capsys):
    cfg = Config.fromfile(CONFIG)
    cfg.model.neck.out_channels = 16  # another model
    path = tmp_path / 'other.pth'
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), path)
    code = _cli(tools['infer'], CONFIG, path, tiny_data / 'test' / '000000.jpg',
                '--out-dir', tmp_path / 'out')
    err = _error_lines(capsys)
    assert code == 2 and len(err) == 1 and 'mismatched' in err[0] and '--allow-partial' in err[0]
