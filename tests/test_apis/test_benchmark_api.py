"""bipa.benchmark: one in-process run on the demo config (64 px), the
timing and counting pieces on their own, the targets and the report."""
import copy
import math
import time

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

from bipa.apis import load_config
from bipa.benchmark import (
    BenchmarkOptions,
    StepBreakdown,
    build_synthetic_batch,
    check_targets,
    exit_status,
    format_report,
    run_benchmark,
    strip_weights,
)
from bipa.benchmark.harness import (
    Meter,
    PositiveCounter,
    autocast,
    batch_sizes_of,
    build_random_model,
    build_wrapper,
    cap_cuda_memory,
    check_predict,
    dtype_name,
    guarded,
    inference_dtype,
    input_size_of,
    setup_env,
)
from bipa.benchmark.step_breakdown import BREAKDOWN_ROWS, Clock, split_step
from tests.conftest import DEMO_CFG, ROOT

CPU = torch.device('cpu')
# the demo trains everything but the ViT: each of these has a backward
TRAINED = ('backbone.adapters', 'local_backbone', 'neck', 'rpn_head', 'roi_head',
           'roi_head.bbox', 'roi_head.mask')


@pytest.fixture(scope='module')
def results():
    options = BenchmarkOptions(batch_sizes=[2], steps=2, warmup=1, input_size=64, instances=3,
                               parts=True, breakdown=True, breakdown_steps=1, search=True,
                               search_batches=1, trials=1, search_repeats=1, predict=(48, 80))
    return run_benchmark(str(DEMO_CFG), CPU, options)


def test_run_benchmark_measures_every_phase(results):
    assert results['input_size'] == 64 and results['batch_sizes'] == [2]
    assert results['dropped_weights'] == ['sam_checkpoint=checkpoints/sam_vit-tiny_inair.pth']
    assert (results['train_amp'], results['test_dtype'], results['amp_note']) == ('fp32', 'fp32',
                                                                                 '')
    assert 0 < results['params_trainable'] < results['params_total']
    run, = results['runs']
    assert run['model_input_shape'] == [2, 3, 64, 64]
    for phase in ('train', 'test'):
        assert len(run[phase]['times_s']) == 2 and run[phase]['peak_mem_mib'] > 0
    assert math.isfinite(run['train']['loss']) and 'loss_mask' in run['train']['losses']
    parts = run['parts']
    # counted in the two timed train steps only, per image
    assert len(parts['positives_per_step']) == 2
    assert all(len(step) == 2 for step in parts['positives_per_step'])
    assert 0 < max(parts['positives_per_image']) <= parts['positives_upper_bound'] == 16
    assert parts['floor_s'] > 0 and parts['step_over_floor'] > 1  # the step does more
    search = results['search']
    assert search['num_images'] == 2 and search['trial']['f'] > 0
    assert search['trial_over_val'] < 1  # a trial re-runs only SAM's decoder
    pred = results['predict']
    assert pred['ok'] and pred['masks_shape'][1:] == [48, 80] and pred['img_shape'] == [38, 64]
    assert 'times_s' not in pred and 'cuda_memory' not in results


def test_breakdown_covers_the_modules(results):
    b = results['runs'][0]['breakdown']
    rows = {r['name']: r for r in b['rows']}
    assert list(rows) == [name for name, _ in BREAKDOWN_ROWS]
    for name, row in rows.items():
        if name != 'backward':
            assert row['forward_s'] > 0, name
    for name in TRAINED:
        assert rows[name]['backward_s'] > 0, name
    assert b['unowned_trainable_params'] == 0 and b['clock'] == 'perf_counter'
    # the instrumented regions cover the step: little is left for `other`
    assert -0.01 * b['step_s'] < b['other_s'] < 0.15 * b['step_s']


def test_step_breakdown_restores_the_model():
    cfg = load_config(str(DEMO_CFG), cfg_options={'model.data_preprocessor.pad_size_divisor': 64})
    model, _ = build_random_model(cfg, CPU)
    wrapper, _, _ = build_wrapper(model, cfg, CPU)
    params = [p for p in model.parameters() if p.requires_grad]
    with StepBreakdown(model, wrapper, Clock(CPU)) as breakdown:
        assert 'forward' in vars(model.backbone) and 'backward' in vars(wrapper)
        model.train_step(build_synthetic_batch(1, 64, num_instances=2, num_classes=5), wrapper)
        assert all(breakdown.grad_marks[name] for name in TRAINED)
    assert 'forward' not in vars(model.backbone) and 'backward' not in vars(wrapper)
    assert not any(p._post_accumulate_grad_hooks for p in params)


def test_split_step_takes_nested_calls_out_and_cuts_the_backward():
    intervals = [['roi_head', 0., 10., None], ['roi_head.bbox', 2., 5., 0],
                 ['roi_head.mask', 5., 9., 0], ['backward', 10., 20., None]]
    marks = {'roi_head.mask': [12., 13.], 'roi_head.bbox': [15.], 'backbone.adapters': [19.],
             'neck': []}
    out = split_step(intervals, marks, lambda a, b: b - a, -1., 22.)
    assert {k: v for k, v in out['forward'].items() if v} == {
        'roi_head': 3., 'roi_head.bbox': 3., 'roi_head.mask': 4.}
    assert {k: v for k, v in out['backward'].items() if v} == {
        'roi_head.mask': 3., 'roi_head.bbox': 2., 'backbone.adapters': 4., 'backward': 1.}
    assert out['step_s'] == 23. and out['other_s'] == 3.


def test_meter_times_fn_and_not_its_setup():
    meter = Meter(CPU, warmup=1, steps=3)
    calls = []
    out = meter.time(lambda arg: (calls.append(arg), time.sleep(0.02)),
                     lambda: time.sleep(0.06) or len(calls))
    assert calls == [0, 1, 2, 3] and len(out['times_s']) == 3
    assert 0.02 <= out['median_s'] < 0.06
    assert out['peak_mem_mib'] > 100 and 'peak_reserved_mib' not in out
    assert len(meter.time(lambda: None, warmup=0, steps=1)['times_s']) == 1


def test_positive_counter_counts_active_training_calls_per_image():
    class Extractor(torch.nn.Module):
        def forward(self, feats, rois):
            return rois

    def rois(*image_ids):
        return torch.tensor([[i, 0., 0., 4., 4.] for i in image_ids])

    extractor, feats = Extractor(), [torch.zeros(2, 1, 8, 8)]
    counter = PositiveCounter(extractor)
    extractor(feats, rois(0))  # inactive
    counter.active = True
    extractor(feats, rois(0, 0, 1))
    extractor(feats, rois(0, 1, 1, 1))
    extractor.eval()
    extractor(feats, rois(1))  # not training
    assert counter.steps == [[2, 1], [1, 3]]
    assert counter.per_image() == [2, 2]  # medians 1.5 (rounded up) and 2
    counter.remove()
    extractor.train()
    extractor(feats, rois(0))
    assert len(counter.steps) == 2


def test_amp_wrapper_falls_back_to_fp32_off_cuda():
    optimizer = dict(type='SGD', lr=0.1)
    amp = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', dtype='bfloat16',
                                         loss_scale='dynamic', optimizer=optimizer)))
    wrapper, dtype, note = build_wrapper(torch.nn.Linear(2, 2), amp, CPU)
    assert type(wrapper) is OptimWrapper and dtype is None
    assert note == ('config asks for AmpOptimWrapper (bfloat16), which needs CUDA: fell back '
                    'to fp32 on cpu')
    plain = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=optimizer)))
    assert build_wrapper(torch.nn.Linear(2, 2), plain, CPU)[1:] == (None, '')


def test_dtypes_and_autocast():
    assert inference_dtype(Config(dict(val_cfg=dict(fp16=True))), 'config') is torch.float16
    assert inference_dtype(Config(dict(val_cfg=dict())), 'config') is None
    assert inference_dtype(Config(dict(val_cfg=dict(fp16=True))), 'bf16') is torch.bfloat16
    assert [dtype_name(d) for d in (None, torch.bfloat16, torch.float16)] == ['fp32', 'bf16',
                                                                              'fp16']
    with autocast(CPU, None):
        assert not torch.is_autocast_enabled('cpu')
    with autocast(CPU, torch.bfloat16):
        assert torch.is_autocast_enabled('cpu')
        assert torch.get_autocast_dtype('cpu') is torch.bfloat16


def test_strip_weights_and_sizes_of_the_uiis_config():
    cfg = Config.fromfile(str(ROOT / 'configs' / 'bipa_uiis.py'))
    dropped = strip_weights(cfg.model)
    assert cfg.model.sam_checkpoint is None and cfg.model.local_backbone.init_cfg is None
    assert len(dropped) == 2 and dropped[0].startswith('sam_checkpoint=')
    assert dropped[1].startswith('model.local_backbone.init_cfg=')
    assert input_size_of(cfg) == 1024 and input_size_of(cfg, 512) == 512
    assert batch_sizes_of(cfg) == [2] and batch_sizes_of(cfg, [1, 4]) == [1, 4]
    cfg.model.data_preprocessor.pad_size_divisor = 32
    with pytest.raises(ValueError, match='pass --input-size'):
        input_size_of(cfg)
    pretrained = dict(type='Pretrained', checkpoint='h.pth')
    nested = Config(dict(model=dict(heads=[dict(init_cfg=pretrained),
                                           dict(init_cfg=dict(type='Kaiming'))]))).model
    assert strip_weights(nested) == ['model.heads[0].init_cfg=h.pth']
    assert nested.heads[0].init_cfg is None and nested.heads[1].init_cfg.type == 'Kaiming'


class FakeDetector(torch.nn.Module):
    """Predicts two masks of ``mask_shape`` and boxes up to ``box_max``."""

    def __init__(self, mask_shape, box_max=10.):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.mask_shape, self.box_max = mask_shape, box_max

    def test_step(self, data):
        assert not self.training and data['inputs'][0].shape == (3, 38, 64)
        pred = InstanceData(masks=torch.zeros(2, *self.mask_shape, dtype=torch.bool),
                            scores=torch.ones(2),
                            bboxes=torch.tensor([[0., 0., 5., 5.], [1., 1., 9., self.box_max]]))
        return [DetDataSample(pred_instances=pred)]


@pytest.mark.parametrize('mask_shape, box_max, ok', [((48, 80), 49., True),
                                                      ((64, 64), 10., False),
                                                      ((48, 80), 50., False)])
def test_check_predict_wants_masks_and_boxes_at_the_original_size(mask_shape, box_max, ok):
    model = FakeDetector(mask_shape, box_max)
    out = check_predict(model, Meter(CPU), (48, 80), 64)
    assert out['ok'] is ok and model.training
    assert (out['detections'], out['masks_shape'], out['img_shape']) == (2, [2, *mask_shape],
                                                                         [38, 64])


def cuda_results() -> dict:
    """Numbers as a CUDA run gives them (allocated and reserved peaks)."""
    def phase(ms, mib, **more):
        return dict(median_s=ms / 1e3, peak_mem_mib=mib, peak_reserved_mib=mib + 1024, **more)

    return dict(
        train_amp='bf16', runs=[
            dict(batch_size=2, train=phase(500, 10240, loss=1.5), test=phase(250, 4096),
                 parts=dict(floor_s=0.4, step_over_floor=1.25)),
            dict(batch_size=1, train=phase(300, 900, loss=2.0), test=phase(200, 800))],
        predict=dict(ori_shape=[1080, 1440], ok=True, detections=3,
                     masks_shape=[3, 1080, 1440], mask_dtype='torch.bool'),
        cuda_memory=dict(context_mib=500.0))


def test_check_targets_on_cuda_numbers():
    checks = check_targets(cuda_results())
    assert checks == [
        dict(name='peak allocated at batch 2 (bf16) <= 20 GB', ok=True,
             detail='10.74 GB = 10.00 GiB'),
        dict(name='peak reserved at batch 2 (bf16) <= 20 GB', ok=True,
             detail='11.81 GB = 11.00 GiB (+ CUDA context 0.49 GiB)'),
        dict(name='train step <= 1.25 x floor at batch 2', ok=True,
             detail='1.250 = 500.0 ms / 400.0 ms'),
        dict(name='batch 1 ran (bf16)', ok=True,
             detail='train 300.0 ms, test 200.0 ms, peak 900 MiB, loss 2.0000'),
        dict(name='predict gives masks at the original size 1080x1440', ok=True,
             detail='3 detections, masks [3, 1080, 1440] torch.bool')]
    assert exit_status(dict(checks=checks)) == 0 and exit_status({}) == 0


def test_check_targets_flags_numbers_over_the_targets():
    r = cuda_results()
    b2, b1 = r['runs']
    b2['train']['peak_reserved_mib'] = 21e9 / 2**20  # 21 GB reserved, allocated within
    b2['parts']['step_over_floor'] = 1.3
    b1['train']['loss'] = float('nan')
    r['predict']['ok'] = False
    r['checks'] = check_targets(r)
    assert [c['name'] for c in r['checks'] if not c['ok']] == [
        'peak reserved at batch 2 (bf16) <= 20 GB', 'train step <= 1.25 x floor at batch 2',
        'batch 1 ran (bf16)', 'predict gives masks at the original size 1080x1440']
    assert exit_status(r) == 1
    assert check_targets(r, max_peak_gb=22, max_step_over_floor=1.3)[:3] == [
        dict(name=n, ok=True, detail=d) for n, d in (
            ('peak allocated at batch 2 (bf16) <= 22 GB', '10.74 GB = 10.00 GiB'),
            ('peak reserved at batch 2 (bf16) <= 22 GB',
             '21.00 GB = 19.56 GiB (+ CUDA context 0.49 GiB)'),
            ('train step <= 1.3 x floor at batch 2', '1.300 = 500.0 ms / 400.0 ms'))]
    del b2['parts']
    assert check_targets(r)[2]['detail'] == 'floor not measured: no --parts'
    assert check_targets(dict(r, runs=[b1]))[0] == dict(name='batch 2 ran', ok=False,
                                                        detail='no run at batch 2')


def test_failed_phases_fail_their_checks_and_show_in_the_report(results):
    r = copy.deepcopy(results)
    assert [c['ok'] for c in check_targets(r, max_step_over_floor=100)] == [True] * 3
    assert check_targets(r)[0]['name'] == 'peak RSS at batch 2 (fp32) <= 20 GB'
    run = r['runs'][0]
    run['breakdown'] = guarded(lambda: {}['encoder'])
    run['parts'] = guarded(lambda: 1 / 0)
    r['search'] = guarded(lambda: 1 / 0)
    r['predict'] = guarded(lambda: [][0])
    r['checks'] = check_targets(r, max_step_over_floor=100)
    assert [c for c in r['checks'] if not c['ok']] == [
        dict(name='train step <= 100 x floor at batch 2', ok=False,
             detail='floor not measured: ZeroDivisionError: division by zero'),
        dict(name='predict gives masks at the original size', ok=False,
             detail='IndexError: list index out of range'),
        dict(name='batch 2: breakdown ran', ok=False, detail="KeyError: 'encoder'"),
        dict(name='prompt search ran', ok=False, detail='ZeroDivisionError: division by zero')]
    report = format_report(r)
    for line in ('  floor parts', '  breakdown', 'search', 'predict'):
        assert f'\n{line}' in report and report.count('FAILED: ') == 4
    assert 'train step by module' not in report
    assert report.splitlines()[-4:] == [
        f"FAIL  {c['name']}: {c['detail']}" for c in r['checks'] if not c['ok']]


def test_report_rows_and_breakdown_table(results):
    report = format_report(dict(results, checks=check_targets(results)))
    lines = report.splitlines()
    assert lines[0].split() == ['config', str(DEMO_CFG)]
    assert lines[2].split() == ['input', '64', 'px,', '3', 'instances/image']
    for label in ('batch 2: train step', 'batch 2: test step (fp32)', '  encoder_fwd_bwd',
                  '  step / floor', 'search trial', 'trial / val pass', 'predict (fp32)'):
        assert any(line.startswith(label) for line in lines), label
    table = report[report.index('batch 2: train step by module'):].splitlines()
    assert [line[2:34].rstrip() for line in table[2:15]] == [
        label for _, label in BREAKDOWN_ROWS] + ['other']
    assert table[15].startswith('  [a] backward:')
    assert lines[-3].startswith('PASS  peak RSS at batch 2 (fp32) <= 20 GB: ')


def test_build_synthetic_batch():
    batch = build_synthetic_batch(2, 128, num_instances=4, num_classes=3, seed=1,
                                  img_shape=(96, 128), ori_shape=(192, 256))
    assert len(batch['inputs']) == 2
    for image, sample in zip(batch['inputs'], batch['data_samples']):
        assert image.dtype == torch.uint8 and image.shape == (3, 96, 128)
        meta = sample.metainfo
        assert meta['img_shape'] == (96, 128) and meta['ori_shape'] == (192, 256)
        assert meta['batch_input_shape'] == (128, 128) and meta['scale_factor'] == (0.5, 0.5)
        gt = sample.gt_instances
        assert gt.bboxes.shape == (4, 4) and gt.labels.max() < 3
        masks = torch.from_numpy(gt.masks.masks).bool()
        assert masks.shape == (4, 96, 128) and masks.flatten(1).any(1).all()
        for mask, (x1, y1, x2, y2) in zip(masks, gt.bboxes.tolist()):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert xs.min() >= math.floor(x1) and xs.max() <= math.ceil(x2)
            assert ys.min() >= math.floor(y1) and ys.max() <= math.ceil(y2)
    with pytest.raises(ValueError, match='does not fit'):
        build_synthetic_batch(1, 64, img_shape=(96, 128))


def test_setup_env_applies_env_cfg_as_the_runner_does(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, 'benchmark', False)
    env_cfg = dict(cudnn_benchmark=True, cuda_alloc_conf='expandable_segments:True')
    cfg = Config(dict(env_cfg=env_cfg, randomness=dict(seed=0)))
    # off CUDA the allocator is left alone
    assert setup_env(cfg, CPU) == dict(alloc_conf='', cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is True
    cfg.randomness.deterministic = True
    assert setup_env(cfg, CPU)['cudnn_benchmark'] is False


def test_memory_cap_needs_cuda_and_shows_in_checks_and_report(results):
    assert cap_cuda_memory(CPU, None) is None
    with pytest.raises(ValueError, match='memory_cap_gb=20 needs a CUDA device'):
        cap_cuda_memory(CPU, 20)
    cap = dict(memory_cap=dict(cap_gb=20, total_gb=150.1))
    assert check_targets(dict(cuda_results(), **cap))[1]['detail'] == (
        '11.81 GB = 11.00 GiB (+ CUDA context 0.49 GiB), allocator capped at 20 GB')
    assert (results['alloc_conf'], results['cudnn_benchmark']) == ('', False)
    report = format_report(dict(results, **cap, device='cuda',
                                alloc_conf='expandable_segments:True'))
    rows = {line[:16].rstrip(): line[16:].strip() for line in report.splitlines()[:10]}
    assert rows['memory cap'] == '20 GB of 150.1 GB (set_per_process_memory_fraction)'
    assert rows['allocator'] == 'PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True'
    assert rows['cudnn.benchmark'] == 'False'
    assert 'allocator' not in format_report(results)
