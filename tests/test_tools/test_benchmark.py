"""tools/analysis/benchmark.py on CPU (tiny models) and gpu_check.sh's syntax."""
import json
import math
import shutil
import subprocess

import pytest
import torch

from tests.conftest import ROOT as REPO, load_tool

DEMO = str(REPO / 'configs' / 'bipa_demo_synthetic.py')
FAST = ['--device', 'cpu', '--steps', '1', '--warmup', '1', '--batch-size', '1',
        '--trials', '2', '--search-batches', '2', '--search-repeats', '1']
PARTS = ('encoder_fwd_bwd', 'resnet_fwd', 'sam_decoder_fwd_bwd')


@pytest.fixture(scope='module')
def benchmark():
    return load_tool('analysis/benchmark')


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _check_phase(phase):
    assert _positive(phase['median_s'])
    assert all(_positive(t) for t in phase['times_s'])
    assert _positive(phase['peak_mem_mib'])


def _check_results(r, batch_size=1):
    assert r['batch_size'] == batch_size
    for key in ('params_total', 'params_trainable', 'input_size'):
        assert _positive(r[key]), key
    assert r['params_trainable'] < r['params_total']
    for key in ('train', 'test'):
        _check_phase(r[key])
        assert _positive(r[key]['images_per_s'])
    assert math.isfinite(r['train']['loss'])

    parts = r['parts']
    for key in (*PARTS, 'mask_targets'):
        _check_phase(parts[key])
    assert len(parts['positives_per_image']) == batch_size
    assert all(_positive(n) for n in parts['positives_per_image'])
    assert max(parts['positives_per_image']) <= parts['positives_upper_bound']
    assert parts['positives_source'].startswith('sampler')
    assert parts['floor_s'] == pytest.approx(sum(parts[k]['median_s'] for k in PARTS))
    assert parts['step_over_floor'] == pytest.approx(r['train']['median_s'] / parts['floor_s'])

    search = r['search']
    assert search['num_images'] == 2 * batch_size
    for key in ('prepare', 'trial', 'val_pass'):
        _check_phase(search[key])
    assert len(search['trial']['times_s']) == 2
    assert _positive(search['trial']['f'])  # mean BCE
    assert search['trial_over_val'] == pytest.approx(
        search['trial']['median_s'] / search['val_pass']['median_s'])


def test_benchmark_demo_config(benchmark, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    r = benchmark.main([DEMO, *FAST, '--search', '--parts', '--json', str(out)])
    _check_results(r)
    assert r['input_size'] == 128  # the demo's pad_size_divisor
    assert r['model_input_shape'] == [1, 3, 128, 128]
    assert r['train_amp'] == 'fp32' and r['amp_note'] == ''
    assert r['grad_mode'] == 'residual'
    assert 'cpu peak RSS' in r['mem_kind']
    assert json.loads(out.read_text()) == json.loads(json.dumps(r))
    table = capsys.readouterr().out
    for label in ('train step', 'test step', 'encoder_fwd_bwd', 'floor (sum)', 'step / floor',
                  'search trial', 'validation pass', 'trial / val pass', 'params'):
        assert label in table


def test_benchmark_tiny_vit_variant(benchmark):
    """Exact gradients through a checkpointed tiny ViT at another input size,
    with the paper's bf16 AmpOptimWrapper, which falls back to fp32 on CPU."""
    r = benchmark.main([
        DEMO, *FAST, '--search', '--parts', '--input-size', '64', '--instances', '3',
        '--cfg-options', 'model.backbone.grad_mode=checkpoint',
        'model.backbone.adapter_indices=[0,2]', 'optim_wrapper.type=AmpOptimWrapper',
        'optim_wrapper.dtype=bfloat16'])
    _check_results(r)
    assert r['input_size'] == 64 and r['instances'] == 3
    assert r['model_input_shape'] == [1, 3, 64, 64]
    assert r['grad_mode'] == 'checkpoint'
    assert r['train_amp'] == 'fp32'
    assert 'AmpOptimWrapper' in r['amp_note'] and 'fell back to fp32' in r['amp_note']


def test_make_batch(benchmark):
    batch = benchmark.make_batch(2, 128, num_instances=4, num_classes=3, seed=1,
                                 img_shape=(96, 128), ori_shape=(192, 256))
    assert len(batch['inputs']) == 2
    for image, sample in zip(batch['inputs'], batch['data_samples']):
        assert image.dtype == torch.uint8 and image.shape == (3, 96, 128)
        meta = sample.metainfo
        assert meta['img_shape'] == (96, 128) and meta['ori_shape'] == (192, 256)
        assert meta['batch_input_shape'] == (128, 128) and meta['pad_shape'] == (128, 128)
        assert meta['scale_factor'] == (0.5, 0.5)
        gt = sample.gt_instances
        assert gt.bboxes.shape == (4, 4) and gt.labels.max() < 3
        masks = torch.from_numpy(gt.masks.masks).bool()
        assert masks.shape == (4, 96, 128) and masks.flatten(1).any(1).all()
        for mask, (x1, y1, x2, y2) in zip(masks, gt.bboxes.tolist()):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert xs.min() >= math.floor(x1) and xs.max() <= math.ceil(x2)
            assert ys.min() >= math.floor(y1) and ys.max() <= math.ceil(y2)


def test_strip_weights(benchmark):
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / 'configs' / 'bipa_uiis.py'))
    dropped = benchmark.strip_weights(cfg.model)
    assert cfg.model.sam_checkpoint is None
    assert cfg.model.local_backbone.init_cfg is None
    assert len(dropped) == 2
    assert benchmark.input_size_of(cfg, None) == 1024
    assert benchmark.batch_size_of(cfg, None) == 2


@pytest.mark.skipif(shutil.which('bash') is None, reason='no bash')
def test_gpu_check_script_syntax():
    script = REPO / 'tools' / 'analysis' / 'gpu_check.sh'
    proc = subprocess.run(['bash', '-n', str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
