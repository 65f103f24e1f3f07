"""Speed and memory of a BiPA config: training steps, inference, the parts that
make the floor of a step, and the prompt search's cost, on synthetic data.

    python tools/analysis/benchmark.py configs/bipa_uiis.py [--cfg-options ...] \
        [--batch-size 2] [--steps 10] [--warmup 2] [--device cuda|cpu] \
        [--input-size 1024] [--parts] [--search] [--json out.json]

The model is built from the config with random weights (``sam_checkpoint`` and
the ResNet's ``Pretrained`` init are dropped: speed and memory do not depend on
the weights). Each batch holds random uint8 images at the config's input size
(the data preprocessor's ``pad_size_divisor``, which BiPA configs set to SAM's
fixed input size, or ``--input-size``) with ``--instances`` random boxes per
image and elliptic or rectangular masks inside them.

Phases (each reports the median time, images/s and the phase's peak memory):

- ``train``: ``model.train_step(batch, optim_wrapper)`` = data preprocessing,
  forward, backward and optimizer step, under the config's optimizer wrapper
  (``AmpOptimWrapper`` bf16 on CUDA; on CPU it falls back to fp32 and says so);
- ``test``: ``model.test_step(batch)`` in eval mode without gradients, in the
  dtype of the validation loop (``val_cfg.fp16``; ``--test-dtype``);
- ``--parts``: the floor of a training step, each part with the step's
  gradient scheme and autocast: the ViT encoder forward + backward into the
  adapters (``model.backbone``, backward of the sum of its outputs), the
  ResNet forward (no gradient, it is frozen), and SAM's mask decoder forward +
  backward (into the sparse tokens and the image embedding, as in the step) for
  the number of positive RoIs per image that the RoI head's sampler actually
  produced in the timed training steps (counted by a hook on the mask head;
  the median over steps, per image). ``floor`` is their sum and
  ``step_over_floor`` the train step's median over it. ``mask_targets`` (not
  in the floor) times the mask head's GT targets for those positives;
- ``--search``: a :class:`bipa.engine.MaskObjective` (the bilevel loop's
  upper-level objective, with the loop's autocast dtype) over
  ``--search-batches`` synthetic batches standing in for D_val: its cache build
  (``prepare``), one trial ``objective(w)`` for random group weights in the
  search interval, and one validation pass, ``model.test_step`` over the same
  batches; ``trial_over_val`` is the ratio of the last two.

Peak memory is ``torch.cuda.max_memory_allocated`` per phase on CUDA (reset
before each phase). On CPU it is the process's peak resident set size
(``getrusage``), which cannot be reset: it is the high-water mark so far.
"""
import argparse
import contextlib
import copy
import json
import logging
import math
import platform
import resource
import statistics
import sys
import time
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

DTYPES = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override config keys, e.g. model.backbone.grad_mode=checkpoint')
    p.add_argument('--batch-size', type=int, default=None,
                   help='images per batch (default: the train dataloader\'s)')
    p.add_argument('--steps', type=int, default=10, help='timed iterations per phase')
    p.add_argument('--warmup', type=int, default=2, help='untimed iterations per phase')
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda if available)')
    p.add_argument('--input-size', type=int, default=None,
                   help='square input size (default: the preprocessor\'s pad_size_divisor)')
    p.add_argument('--instances', type=int, default=8, help='GT instances per image')
    p.add_argument('--test-dtype', choices=('config', 'fp32', 'bf16', 'fp16'),
                   default='config', help='autocast of the test phase and of the '
                   'validation pass (config: fp16 if val_cfg.fp16 else fp32, as ValLoop)')
    p.add_argument('--parts', action='store_true', help='time the parts of a step\'s floor')
    p.add_argument('--search', action='store_true', help='time the prompt search')
    p.add_argument('--search-batches', type=int, default=4,
                   help='batches of D_val stand-in for --search')
    p.add_argument('--trials', type=int, default=5, help='timed trials for --search')
    p.add_argument('--search-repeats', type=int, default=3,
                   help='timed cache builds and validation passes for --search')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch\'s own)')
    p.add_argument('--json', default=None, help='write all numbers to this file')
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error('--steps must be >= 1 and --warmup >= 0')
    return args


# --- config and model --------------------------------------------------------


def load_config(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def strip_weights(model_cfg) -> List[str]:
    """Drop every pretrained-weight reference (random init is the point)."""
    dropped = []
    if model_cfg.get('sam_checkpoint'):
        dropped.append(f'sam_checkpoint={model_cfg.sam_checkpoint}')
        model_cfg.sam_checkpoint = None

    def visit(node, path):
        if isinstance(node, dict):
            init = node.get('init_cfg')
            if isinstance(init, dict) and init.get('type') == 'Pretrained':
                dropped.append(f'{path}.init_cfg={init.get("checkpoint")}')
                node['init_cfg'] = None
            for key, value in node.items():
                visit(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                visit(value, f'{path}[{i}]')
    visit(model_cfg, 'model')
    return dropped


def build_model(cfg: Config, device: torch.device):
    import bipa  # noqa: F401  (registers BiPA's modules)
    from mmdet.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    dropped = strip_weights(model_cfg)
    model = MODELS.build(model_cfg)
    # no file is read: every Pretrained reference is gone; keep the per-parameter
    # init report out of the output
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.to(device), dropped


def build_wrapper(model, cfg: Config, device: torch.device):
    """The config's optimizer wrapper; ``AmpOptimWrapper`` needs CUDA, so on
    CPU it becomes a plain fp32 ``OptimWrapper`` (returned note says so)."""
    from mmengine.optim import AmpOptimWrapper, build_optim_wrapper
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    note = ''
    if wrapper_cfg.get('type') == 'AmpOptimWrapper' and device.type != 'cuda':
        dtype = wrapper_cfg.pop('dtype', None)
        wrapper_cfg.pop('loss_scale', None)
        wrapper_cfg.pop('use_fsdp', None)
        wrapper_cfg['type'] = 'OptimWrapper'
        note = (f'config asks for AmpOptimWrapper ({dtype or "fp16"}), which needs CUDA: '
                f'fell back to fp32 on {device.type}')
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    amp_dtype = wrapper.cast_dtype if isinstance(wrapper, AmpOptimWrapper) else None
    if isinstance(wrapper, AmpOptimWrapper) and amp_dtype is None:
        amp_dtype = torch.float16  # AmpOptimWrapper's autocast default
    return wrapper, amp_dtype, note


def input_size_of(cfg: Config, override: Optional[int]) -> int:
    if override:
        return override
    size = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor')
    if not size or size < 64:
        raise ValueError(f'cannot read the input size from the config (pad_size_divisor='
                         f'{size}); pass --input-size')
    return int(size)


def batch_size_of(cfg: Config, override: Optional[int]) -> int:
    if override:
        return override
    return int(cfg.get('train_dataloader', {}).get('batch_size', 2))


# --- synthetic data ----------------------------------------------------------


def make_batch(batch_size: int, input_size: int, *, num_instances: int = 8,
               num_classes: int = 1, seed: int = 0,
               img_shape: Optional[Sequence[int]] = None,
               ori_shape: Optional[Sequence[int]] = None) -> dict:
    """An mmdet batch ``dict(inputs=[uint8 CHW], data_samples=[DetDataSample])``.

    Images are ``img_shape`` (default: the full input size), padded to
    ``input_size`` by the data preprocessor; boxes and masks are in image
    coordinates. ``ori_shape`` (default ``img_shape``) sets ``scale_factor`` as
    a Resize from the original image would.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    rng = np.random.RandomState(seed)
    h, w = img_shape or (input_size, input_size)
    ori_h, ori_w = ori_shape or (h, w)
    inputs, samples = [], []
    yy, xx = np.mgrid[:h, :w]
    for idx in range(batch_size):
        inputs.append(torch.from_numpy(rng.randint(0, 256, (3, h, w), dtype=np.uint8)))
        bw = rng.uniform(0.05, 0.5, num_instances) * w
        bh = rng.uniform(0.05, 0.5, num_instances) * h
        x1 = rng.uniform(0, 1, num_instances) * (w - bw)
        y1 = rng.uniform(0, 1, num_instances) * (h - bh)
        boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1).astype(np.float32)
        masks = np.zeros((num_instances, h, w), dtype=np.uint8)
        for k, (a, b, c, d) in enumerate(boxes):
            inside = (xx >= a) & (xx < c) & (yy >= b) & (yy < d)
            if rng.rand() < 0.5:  # ellipse inscribed in the box
                cx, cy, rx, ry = (a + c) / 2, (b + d) / 2, (c - a) / 2, (d - b) / 2
                inside &= ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1
            masks[k] = inside
        gt = InstanceData()
        gt.bboxes = torch.from_numpy(boxes)
        gt.labels = torch.from_numpy(rng.randint(0, num_classes, num_instances)).long()
        gt.masks = BitmapMasks(masks, h, w)
        sample = DetDataSample()
        sample.set_metainfo(dict(
            img_id=idx, img_path=f'<synthetic-{seed}-{idx}>', ori_shape=(ori_h, ori_w),
            img_shape=(h, w), pad_shape=(input_size, input_size),
            batch_input_shape=(input_size, input_size),
            scale_factor=(w / ori_w, h / ori_h), flip=False, flip_direction=None))
        sample.gt_instances = gt
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


# --- timing ------------------------------------------------------------------


class Meter:
    """Synchronised timings and per-phase peak memory on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == 'cuda'

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.cuda:
            self.sync()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> Dict[str, float]:
        if self.cuda:
            self.sync()
            return dict(peak_mem_mib=torch.cuda.max_memory_allocated(self.device) / 2**20,
                        peak_reserved_mib=torch.cuda.max_memory_reserved(self.device) / 2**20)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss = rss / 2**20 if platform.system() == 'Darwin' else rss / 2**10  # bytes vs KiB
        return dict(peak_mem_mib=rss)

    @property
    def mem_kind(self) -> str:
        return ('cuda max_memory_allocated (per phase)' if self.cuda
                else 'cpu peak RSS of the process (high-water mark, not per phase)')

    def time(self, fn: Callable[[], object], warmup: int, steps: int,
             setup: Optional[Callable[[], object]] = None) -> Dict[str, object]:
        """Median seconds of ``fn(setup())`` over ``steps`` after ``warmup``;
        ``setup`` runs outside the timed region."""
        times = []
        self.reset_peak()
        for i in range(warmup + steps):
            arg = setup() if setup is not None else None
            self.sync()
            start = time.perf_counter()
            fn() if setup is None else fn(arg)
            self.sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return dict(median_s=statistics.median(times), times_s=times, **self.peak())


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def test_dtype_of(cfg: Config, choice: str) -> Optional[torch.dtype]:
    if choice != 'config':
        return DTYPES[choice]
    return torch.float16 if cfg.get('val_cfg', {}).get('fp16') else None


def dtype_name(dtype: Optional[torch.dtype]) -> str:
    return {None: 'fp32', torch.bfloat16: 'bf16', torch.float16: 'fp16'}[dtype]


# --- phases ------------------------------------------------------------------


class PositiveCounter:
    """Counts, per image, the RoIs that the mask branch gets in training (the
    sampler's positives), at its RoI extractor."""

    def __init__(self, mask_roi_extractor) -> None:
        self.active = False
        self._records: List[tuple] = []
        self._handle = mask_roi_extractor.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        if self.active and module.training:  # keep the ids, count later: no sync here
            feats, rois = args[0], args[1]
            self._records.append((rois[:, 0].detach(), feats[0].shape[0]))

    @property
    def steps(self) -> List[List[int]]:
        """Positives per image, per recorded step."""
        return [torch.bincount(ids.long(), minlength=n).tolist() for ids, n in self._records]

    def per_image(self) -> List[int]:
        """Median count per image over the recorded steps (rounded up)."""
        return [int(math.ceil(statistics.median(col))) for col in zip(*self.steps)]

    def remove(self) -> None:
        self._handle.remove()


def phase_train(model, wrapper, batch, meter: Meter, args, counter: PositiveCounter):
    model.train()
    losses = []

    def step(data):
        log_vars = model.train_step(data, wrapper)
        losses.append(log_vars)

    def setup():
        counter.active = len(losses) >= args.warmup  # count the timed steps only
        return copy.deepcopy(batch)

    out = meter.time(step, args.warmup, args.steps, setup)
    counter.active = False
    last = {k: float(torch.as_tensor(v).detach()) for k, v in losses[-1].items()}
    out['loss'] = last.get('loss', float('nan'))
    out['losses'] = last
    return out


def phase_test(model, batch, meter: Meter, args, dtype):
    model.eval()
    results = []

    def step(data):
        with torch.no_grad(), autocast(meter.device, dtype):
            results.append(len(model.test_step(data)))
    out = meter.time(step, args.warmup, args.steps, lambda: copy.deepcopy(batch))
    model.train()
    return out


def phase_parts(model, batch, meter: Meter, args, amp_dtype, positives: List[int]):
    """The floor of a training step, each part in the step's grad scheme."""
    device = meter.device
    model.train()
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(batch), True)
    inputs = data['inputs']
    parts = {}

    def encoder(_):
        with autocast(device, amp_dtype):
            embedding, hidden = model.backbone(inputs)
            loss = embedding.float().sum() + sum(h.float().sum() for h in hidden)
        if loss.requires_grad:
            loss.backward()
    parts['encoder_fwd_bwd'] = meter.time(encoder, args.warmup, args.steps,
                                          setup=lambda: model.zero_grad(set_to_none=True))

    def resnet():
        with torch.no_grad(), autocast(device, amp_dtype):
            model.local_backbone(inputs)
    parts['resnet_fwd'] = meter.time(resnet, args.warmup, args.steps)

    from bipa.models import MaskPrompts
    mask_head = model.roi_head.mask_head
    with torch.no_grad(), autocast(device, amp_dtype):
        embeddings = model.backbone(inputs)[0].detach()
    gen = mask_head.prompt_generator
    num_tokens, dim = gen.num_tokens, gen.embed_dim

    def decoder_setup():
        model.zero_grad(set_to_none=True)
        emb = embeddings.clone().requires_grad_(True)
        tokens = [torch.randn(n, num_tokens, dim, device=device, requires_grad=True)
                  for n in positives]
        return emb, tokens

    def decoder(arg):
        emb, tokens = arg
        with autocast(device, amp_dtype):
            logits = [mask_head.decode(MaskPrompts(
                image_embeddings=emb[i:i + 1], image_pe=mask_head.image_pe(emb.shape[-2:]),
                tokens=t, img_inds=t.new_zeros(t.shape[0], dtype=torch.long)))
                for i, t in enumerate(tokens) if t.shape[0]]
            loss = sum(x.float().sum() for x in logits)
        if torch.is_tensor(loss) and loss.requires_grad:
            loss.backward()
    parts['sam_decoder_fwd_bwd'] = meter.time(decoder, args.warmup, args.steps, decoder_setup)
    model.zero_grad(set_to_none=True)

    # not in the floor, for diagnosis: the mask head's full-size GT targets of the
    # positives (BitmapMasks indexed and converted on the host, then copied)
    gts = [s.gt_instances for s in data['data_samples']]
    rng = np.random.RandomState(args.seed)
    sampling = [SimpleNamespace(pos_assigned_gt_inds=torch.from_numpy(
        rng.randint(0, len(gt), n)).to(device)) for gt, n in zip(gts, positives)]
    parts['mask_targets'] = meter.time(
        lambda: mask_head.get_targets(sampling, gts, device), args.warmup, args.steps)
    return parts


def phase_search(model, cfg: Config, meter: Meter, args, amp_dtype, test_dtype, batch_size,
                 input_size, num_classes):
    from bipa.engine.prompt_objective import MaskObjective
    device = meter.device
    batches = [make_batch(batch_size, input_size, num_instances=args.instances,
                          num_classes=num_classes, seed=args.seed + 1000 + k)
               for k in range(args.search_batches)]
    num_images = batch_size * len(batches)
    out = dict(num_batches=len(batches), num_images=num_images,
               autocast=dtype_name(amp_dtype), val_dtype=dtype_name(test_dtype))

    def fresh_objective():
        return MaskObjective(model, copy.deepcopy(batches), cache=True,
                             autocast_dtype=amp_dtype)

    out['prepare'] = meter.time(lambda obj: obj.prepare(), min(args.warmup, 1),
                                args.search_repeats, fresh_objective)
    objective = fresh_objective()
    objective.prepare()
    prompt = model.dense_prompt
    low, high = prompt.search_interval
    rng = np.random.RandomState(args.seed)
    values = []
    out['trial'] = meter.time(lambda w: values.append(objective(w)), min(args.warmup, 1),
                              args.trials,
                              lambda: rng.uniform(low, high, prompt.num_groups).tolist())
    out['trial']['f'] = values[-1]
    objective.free()

    model.eval()

    def val_pass(data):
        with torch.no_grad(), autocast(device, test_dtype):
            for b in data:
                model.test_step(b)
    out['val_pass'] = meter.time(val_pass, min(args.warmup, 1), args.search_repeats,
                                 lambda: copy.deepcopy(batches))
    model.train()
    out['trial_over_val'] = out['trial']['median_s'] / out['val_pass']['median_s']
    return out


# --- report ------------------------------------------------------------------


def _fmt_mem(mib: float) -> str:
    return f'{mib / 1024:.2f} GiB' if mib >= 1024 else f'{mib:.0f} MiB'


def format_table(r: dict) -> str:
    rows = [('config', r['config']), ('device', r['device_name']),
            ('input', ' x '.join(map(str, r['model_input_shape']))
             + f", {r['instances']} instances/image"),
            ('train amp', r['train_amp'] + (f" ({r['amp_note']})" if r['amp_note'] else '')),
            ('params', f"{r['params_total']:,} total, {r['params_trainable']:,} trainable"),
            ('memory', r['mem_kind'])]
    t = r['train']
    rows.append(('train step', f"{t['median_s'] * 1e3:9.1f} ms  {t['images_per_s']:8.2f} img/s"
                 f"  peak {_fmt_mem(t['peak_mem_mib'])}  loss {t['loss']:.4f}"))
    t = r['test']
    rows.append((f"test step ({r['test_dtype']})",
                 f"{t['median_s'] * 1e3:9.1f} ms  {t['images_per_s']:8.2f} img/s"
                 f"  peak {_fmt_mem(t['peak_mem_mib'])}"))
    if 'parts' in r:
        p = r['parts']
        for name in ('encoder_fwd_bwd', 'resnet_fwd', 'sam_decoder_fwd_bwd'):
            rows.append((f'  {name}', f"{p[name]['median_s'] * 1e3:9.1f} ms"
                         f"  peak {_fmt_mem(p[name]['peak_mem_mib'])}"))
        rows.append(('  (mask_targets)', f"{p['mask_targets']['median_s'] * 1e3:9.1f} ms"
                     '  not in the floor: GT masks of the positives to the device'))
        rows.append(('  positive RoIs/image', f"{p['positives_per_image']} (sampler upper "
                     f"bound {p['positives_upper_bound']})"))
        rows.append(('floor (sum)', f"{p['floor_s'] * 1e3:9.1f} ms"))
        rows.append(('step / floor', f"{p['step_over_floor']:9.3f}"))
    if 'search' in r:
        s = r['search']
        n = s['num_images']
        rows.append(('search D_val', f"{s['num_batches']} batches, {n} images, "
                     f"autocast {s['autocast']}"))
        for key, label in (('prepare', 'search cache build'), ('trial', 'search trial'),
                           ('val_pass', f"validation pass ({s['val_dtype']})")):
            rows.append((label, f"{s[key]['median_s'] * 1e3:9.1f} ms  "
                         f"{s[key]['median_s'] / n * 1e3:8.2f} ms/img"
                         f"  peak {_fmt_mem(s[key]['peak_mem_mib'])}"))
        rows.append(('trial / val pass', f"{s['trial_over_val']:9.3f}"))
    width = max(len(k) for k, _ in rows)
    return '\n'.join(f'{k:<{width}}  {v}' for k, v in rows)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: CUDA is not available')
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    cfg = load_config(args)
    input_size = input_size_of(cfg, args.input_size)
    if args.input_size:  # BiPA pads every image to this fixed size
        cfg.model.data_preprocessor.pad_size_divisor = args.input_size
    batch_size = batch_size_of(cfg, args.batch_size)
    model, dropped = build_model(cfg, device)
    wrapper, amp_dtype, note = build_wrapper(model, cfg, device)
    test_dtype = test_dtype_of(cfg, args.test_dtype)
    meter = Meter(device)
    num_classes = model.roi_head.bbox_head.num_classes

    params = list(model.parameters())
    results = dict(
        config=args.config, cfg_options=args.cfg_options or {}, device=str(device),
        device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                     else f'cpu ({torch.get_num_threads()} threads)'),
        torch=torch.__version__, batch_size=batch_size, input_size=input_size,
        instances=args.instances, steps=args.steps, warmup=args.warmup,
        train_amp=dtype_name(amp_dtype), amp_note=note, test_dtype=dtype_name(test_dtype),
        dropped_weights=dropped, mem_kind=meter.mem_kind,
        grad_mode=getattr(model.backbone, 'grad_mode', None),
        params_total=sum(p.numel() for p in params),
        params_trainable=sum(p.numel() for p in params if p.requires_grad))

    batch = make_batch(batch_size, input_size, num_instances=args.instances,
                       num_classes=num_classes, seed=args.seed)
    with torch.no_grad():  # what the model really gets
        shape = model.data_preprocessor(copy.deepcopy(batch), True)['inputs'].shape
    results['model_input_shape'] = list(shape)
    counter = PositiveCounter(model.roi_head.mask_roi_extractor)
    try:
        results['train'] = phase_train(model, wrapper, batch, meter, args, counter)
    finally:
        counter.remove()
    results['test'] = phase_test(model, batch, meter, args, test_dtype)
    for key in ('train', 'test'):
        results[key]['images_per_s'] = batch_size / results[key]['median_s']

    if args.parts:
        rcnn = cfg.model.train_cfg.rcnn.sampler
        upper = int(rcnn.num * rcnn.pos_fraction)
        positives = counter.per_image()
        source = 'sampler (mask head input in the timed train steps, median per image)'
        if not positives:
            positives = [upper] * batch_size
            source = 'upper bound rcnn.sampler num * pos_fraction (no positive recorded)'
        parts = phase_parts(model, batch, meter, args, amp_dtype, positives)
        parts['positives_per_image'] = positives
        parts['positives_source'] = source
        parts['positives_per_step'] = counter.steps
        parts['positives_upper_bound'] = upper
        parts['floor_s'] = sum(parts[k]['median_s'] for k in
                               ('encoder_fwd_bwd', 'resnet_fwd', 'sam_decoder_fwd_bwd'))
        parts['step_over_floor'] = results['train']['median_s'] / parts['floor_s']
        results['parts'] = parts

    if args.search:
        results['search'] = phase_search(model, cfg, meter, args, amp_dtype, test_dtype,
                                         batch_size, input_size, num_classes)

    print(format_table(results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
        print(f'wrote {args.json}')
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
