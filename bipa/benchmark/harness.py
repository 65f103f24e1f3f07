"""Speed and memory of a BiPA config on synthetic batches, the model built
once with random weights: train and test steps, the floor of a train step,
a per-module breakdown, the prompt search against a validation pass and one
predict.

Batches come from :func:`~bipa.benchmark.build_synthetic_batch` at the config's
input size (the preprocessor's ``pad_size_divisor``, SAM's fixed size). Per
batch size:

- ``train``: ``model.train_step`` (preprocessing, forward, backward, optimizer
  step) under the config's optimizer wrapper (``AmpOptimWrapper`` needs CUDA:
  elsewhere it is fp32, with a note);
- ``test``: ``model.test_step`` without gradients, in the validation dtype;
- ``parts``: the floor of a train step, each part with the step's gradient
  scheme and autocast: the ViT encoder forward + backward into the adapters,
  the ResNet forward (frozen) and SAM's decoder forward + backward for the
  positive RoIs per image that the sampler produced in the timed steps;
- ``breakdown``: :func:`~bipa.benchmark.step_breakdown.measure_breakdown`.

Peak memory per phase: on CUDA ``max_memory_allocated`` and
``max_memory_reserved`` (cache emptied and peaks reset before each phase); on
CPU the process's peak RSS, a high-water mark that cannot be reset. With
``memory_cap_gb`` the CUDA caching allocator may hold at most that much
(``torch.cuda.set_per_process_memory_fraction``): it then frees its cache
before it exceeds the cap, as it would on a card of that size, and raises
``OutOfMemoryError`` when the step does not fit.
"""
import contextlib
import copy
import logging
import math
import os
import platform
import resource
import statistics
import subprocess
import time
import traceback
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed

from ..apis.runner import load_config
from ..engine.prompt_objective import MaskObjective
from ..models import MaskPrompts
from ..utils import setup_cuda_allocator
from .batch import build_synthetic_batch, keep_ratio_shape
from .step_breakdown import Clock, measure_breakdown

DTYPES = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)
FLOOR_PARTS = ('encoder_fwd_bwd', 'resnet_fwd', 'sam_decoder_fwd_bwd')


@dataclass
class BenchmarkOptions:
    """What :func:`run_benchmark` measures, and how long."""
    batch_sizes: Optional[Sequence[int]] = None  # None: the train dataloader's
    steps: int = 10  # timed iterations per phase
    warmup: int = 2  # untimed iterations per phase
    input_size: Optional[int] = None  # None: the preprocessor's pad_size_divisor
    instances: int = 8  # GT instances per image
    test_dtype: str = 'config'  # a DTYPES key, or config: fp16 if val_cfg.fp16
    parts: bool = False
    breakdown: bool = False
    breakdown_steps: int = 3
    search: bool = False  # at the first batch size
    search_batches: int = 4
    trials: int = 5
    search_repeats: int = 3  # timed cache builds and validation passes
    predict: Optional[Sequence[int]] = None  # (H, W) of the one predicted image
    memory_cap_gb: Optional[float] = None  # CUDA: the caching allocator's limit, 1e9 bytes
    seed: int = 0


# --- config and model --------------------------------------------------------


def strip_weights(model_cfg) -> List[str]:
    """Drop every pretrained-weight reference (``sam_checkpoint``, each
    ``Pretrained`` init) in place; what was dropped."""
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


def build_random_model(cfg: Config, device: torch.device) -> Tuple[torch.nn.Module, List[str]]:
    """The config's model with random weights on ``device``, and the weight
    references dropped."""
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    dropped = strip_weights(model_cfg)
    model = MODELS.build(model_cfg)
    logger = MMLogger.get_current_instance()  # keep the per-parameter init report out
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.to(device), dropped


def build_wrapper(model: torch.nn.Module, cfg: Config,
                  device: torch.device) -> Tuple[OptimWrapper, Optional[torch.dtype], str]:
    """The config's optimizer wrapper, its autocast dtype and a note.
    ``AmpOptimWrapper`` needs CUDA: elsewhere it becomes a plain fp32
    ``OptimWrapper`` and the note says so."""
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    note = ''
    if wrapper_cfg.get('type') == 'AmpOptimWrapper' and device.type != 'cuda':
        dtype = wrapper_cfg.pop('dtype', None)
        for key in ('loss_scale', 'use_fsdp'):
            wrapper_cfg.pop(key, None)
        wrapper_cfg['type'] = 'OptimWrapper'
        note = (f'config asks for AmpOptimWrapper ({dtype or "fp16"}), which needs CUDA: '
                f'fell back to fp32 on {device.type}')
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    amp_dtype = None
    if isinstance(wrapper, AmpOptimWrapper):
        amp_dtype = wrapper.cast_dtype or torch.float16  # AmpOptimWrapper's default
    return wrapper, amp_dtype, note


def input_size_of(cfg: Config, override: Optional[int] = None) -> int:
    """The square input size: ``override``, or the preprocessor's
    ``pad_size_divisor`` (BiPA pads every image to it)."""
    if override:
        return override
    size = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor')
    if not size or size < 64:
        raise ValueError(f'cannot read the input size from the config (pad_size_divisor='
                         f'{size}); pass --input-size')
    return int(size)


def batch_sizes_of(cfg: Config, override: Optional[Sequence[int]] = None) -> List[int]:
    """``override``, or the train dataloader's batch size."""
    if override:
        return list(override)
    return [int(cfg.get('train_dataloader', {}).get('batch_size', 2))]


def inference_dtype(cfg: Config, choice: str) -> Optional[torch.dtype]:
    """The autocast dtype of test steps: ``choice`` (a :data:`DTYPES` key), or
    for ``'config'`` fp16 if ``val_cfg.fp16`` else fp32 (None)."""
    if choice != 'config':
        return DTYPES[choice]
    return torch.float16 if cfg.get('val_cfg', {}).get('fp16') else None


def dtype_name(dtype: Optional[torch.dtype]) -> str:
    """The :data:`DTYPES` key of ``dtype``."""
    return {v: k for k, v in DTYPES.items()}[dtype]


# --- timing ------------------------------------------------------------------


class Meter(Clock):
    """Synchronised timings and per-phase peak memory on ``device``; a phase
    is ``warmup`` untimed and ``steps`` timed iterations unless told."""

    def __init__(self, device: torch.device, warmup: int = 2, steps: int = 10) -> None:
        super().__init__(device)
        self.warmup, self.steps = warmup, steps

    def reset_peak(self) -> None:
        if self.cuda:
            self.sync()
            torch.cuda.empty_cache()  # the reserved peak is then this phase's
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> Dict[str, float]:
        """``peak_mem_mib`` (and on CUDA ``peak_reserved_mib``) since the reset."""
        if self.cuda:
            self.sync()
            return dict(peak_mem_mib=torch.cuda.max_memory_allocated(self.device) / 2**20,
                        peak_reserved_mib=torch.cuda.max_memory_reserved(self.device) / 2**20)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss = rss / 2**20 if platform.system() == 'Darwin' else rss / 2**10  # bytes vs KiB
        return dict(peak_mem_mib=rss)

    @property
    def mem_kind(self) -> str:
        return ('cuda max_memory_allocated / max_memory_reserved per phase' if self.cuda
                else 'cpu peak RSS of the process (high-water mark, not per phase)')

    def time(self, fn: Callable, setup: Optional[Callable[[], object]] = None, *,
             warmup: Optional[int] = None, steps: Optional[int] = None) -> Dict[str, object]:
        """Median seconds of ``fn()`` (or ``fn(setup())``, ``setup`` untimed),
        the timed seconds and the peak memory."""
        warmup = self.warmup if warmup is None else warmup
        steps = self.steps if steps is None else steps
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
    """``torch.autocast`` to ``dtype``; none for None."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside, in train mode after."""
    model.eval()
    try:
        yield
    finally:
        model.train()


def predict(model: torch.nn.Module, data: dict, dtype: Optional[torch.dtype]) -> list:
    """``model.test_step(data)`` without gradients, autocast to ``dtype``."""
    device = next(model.parameters()).device
    with torch.no_grad(), autocast(device, dtype):
        return model.test_step(data)


def guarded(phase: Callable[[], dict]) -> dict:
    """``phase()``, or ``dict(error=...)`` with the traceback printed: a failed
    optional phase fails the targets without losing the other numbers."""
    try:
        return phase()
    except Exception as e:  # reported, and a failed check (see check_targets)
        traceback.print_exc()
        return dict(error=f'{type(e).__name__}: {e}')


# --- phases ------------------------------------------------------------------


class PositiveCounter:
    """Counts, per image, the RoIs that the mask branch gets in training (the
    sampler's positives), at its RoI extractor, while ``active``."""

    def __init__(self, mask_roi_extractor: torch.nn.Module) -> None:
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


def time_train(model, wrapper: OptimWrapper, batch: dict, meter: Meter,
               counter: PositiveCounter) -> dict:
    """``model.train_step`` timings, and the last step's losses; ``counter``
    counts in the timed steps only."""
    model.train()
    losses = []

    def setup():
        counter.active = len(losses) >= meter.warmup
        return copy.deepcopy(batch)

    out = meter.time(lambda data: losses.append(model.train_step(data, wrapper)), setup)
    counter.active = False
    last = {k: float(torch.as_tensor(v).detach()) for k, v in losses[-1].items()}
    return dict(out, loss=last.get('loss', float('nan')), losses=last)


def time_test(model, batch: dict, meter: Meter, dtype: Optional[torch.dtype]) -> dict:
    """``model.test_step`` timings in eval mode, autocast to ``dtype``."""
    with evaluating(model):
        return meter.time(lambda data: predict(model, data, dtype),
                          lambda: copy.deepcopy(batch))


def time_floor_parts(model, batch: dict, meter: Meter, amp_dtype: Optional[torch.dtype],
                     positives: Sequence[int], seed: int = 0) -> Dict[str, dict]:
    """The parts of a train step's floor (:data:`FLOOR_PARTS`), each in the
    step's gradient scheme, for ``positives`` RoIs per image in SAM's decoder;
    and ``mask_targets`` (not in the floor): the mask head's GT targets."""
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
    parts['encoder_fwd_bwd'] = meter.time(encoder, lambda: model.zero_grad(set_to_none=True))

    def resnet():
        with torch.no_grad(), autocast(device, amp_dtype):
            model.local_backbone(inputs)
    parts['resnet_fwd'] = meter.time(resnet)

    mask_head = model.roi_head.mask_head
    with torch.no_grad(), autocast(device, amp_dtype):
        encoded = model.backbone(inputs)
        embeddings = encoded.image_embedding.detach()
        features = mask_head.mask_decoder.project_features(encoded.decoder_features)
    gen = mask_head.prompt_generator

    def decoder_setup():
        model.zero_grad(set_to_none=True)
        emb = embeddings.clone().requires_grad_(True)
        tokens = [torch.randn(n, gen.num_tokens, gen.embed_dim, device=device,
                              requires_grad=True) for n in positives]
        return emb, tokens

    def decoder(arg):
        emb, tokens = arg
        with autocast(device, amp_dtype):
            logits = [mask_head.decode(MaskPrompts(
                image_embeddings=emb[i:i + 1], image_pe=mask_head.image_pe(emb.shape[-2:]),
                tokens=t, img_inds=t.new_zeros(t.shape[0], dtype=torch.long),
                decoder_features=tuple(f[i:i + 1] for f in features)))
                for i, t in enumerate(tokens) if t.shape[0]]
            loss = sum(x.float().sum() for x in logits)
        if torch.is_tensor(loss) and loss.requires_grad:
            loss.backward()
    parts['sam_decoder_fwd_bwd'] = meter.time(decoder, decoder_setup)
    model.zero_grad(set_to_none=True)

    # for diagnosis: the full-size GT targets of the positives (BitmapMasks
    # indexed and converted on the host, then copied)
    gts = [s.gt_instances for s in data['data_samples']]
    rng = np.random.RandomState(seed)
    sampling = [SimpleNamespace(pos_assigned_gt_inds=torch.from_numpy(
        rng.randint(0, len(gt), n)).to(device)) for gt, n in zip(gts, positives)]
    parts['mask_targets'] = meter.time(lambda: mask_head.get_targets(sampling, gts, device))
    return parts


def measure_floor(model, batch: dict, meter: Meter, amp_dtype: Optional[torch.dtype],
                  counter: PositiveCounter, train_s: float, seed: int = 0) -> dict:
    """:func:`time_floor_parts` for the positives ``counter`` saw (else the
    sampler's upper bound), their sum ``floor_s`` and ``step_over_floor``,
    the train step ``train_s`` over it."""
    sampler = model.roi_head.train_cfg.sampler
    upper = int(sampler.num * sampler.pos_fraction)
    positives = counter.per_image()
    source = 'sampler (mask head input in the timed train steps, median per image)'
    if not positives:
        positives = [upper] * len(batch['inputs'])
        source = 'upper bound rcnn.sampler num * pos_fraction (no positive recorded)'
    parts = time_floor_parts(model, batch, meter, amp_dtype, positives, seed)
    parts.update(positives_per_image=positives, positives_source=source,
                 positives_per_step=counter.steps, positives_upper_bound=upper,
                 floor_s=sum(parts[k]['median_s'] for k in FLOOR_PARTS))
    parts['step_over_floor'] = train_s / parts['floor_s']
    return parts


def measure_search(model, meter: Meter, batches: List[dict], *,
                   amp_dtype: Optional[torch.dtype], test_dtype: Optional[torch.dtype],
                   trials: int = 5, repeats: int = 3, seed: int = 0) -> dict:
    """The bilevel loop's upper-level objective (:class:`MaskObjective`) over
    ``batches``: cache build, one trial, and a validation pass over the same
    batches, and ``trial_over_val``."""
    warmup = min(meter.warmup, 1)
    num_images = sum(len(b['inputs']) for b in batches)
    out = dict(num_batches=len(batches), num_images=num_images,
               autocast=dtype_name(amp_dtype), val_dtype=dtype_name(test_dtype))

    def fresh_objective():
        return MaskObjective(model, copy.deepcopy(batches), cache=True,
                             autocast_dtype=amp_dtype)

    out['prepare'] = meter.time(lambda obj: obj.prepare(), fresh_objective, warmup=warmup,
                                steps=repeats)
    objective = fresh_objective()
    objective.prepare()
    prompt = model.dense_prompt
    low, high = prompt.search_interval
    rng = np.random.RandomState(seed)
    values = []
    out['trial'] = meter.time(lambda w: values.append(objective(w)),
                              lambda: rng.uniform(low, high, prompt.num_groups).tolist(),
                              warmup=warmup, steps=trials)
    out['trial']['f'] = values[-1]
    objective.free()

    def val_pass(data):
        for b in data:
            predict(model, b, test_dtype)
    with evaluating(model):
        out['val_pass'] = meter.time(val_pass, lambda: copy.deepcopy(batches), warmup=warmup,
                                     steps=repeats)
    out['trial_over_val'] = out['trial']['median_s'] / out['val_pass']['median_s']
    return out


def check_predict(model, meter: Meter, ori_shape: Sequence[int], input_size: int, *,
                  num_classes: int = 1, dtype: Optional[torch.dtype] = None,
                  seed: int = 0) -> dict:
    """One ``test_step`` of an ``ori_shape`` image resized into the input and
    padded, timed; ``ok`` when its masks (bool), boxes and scores come back
    at ``ori_shape``."""
    ori_h, ori_w = ori_shape
    img_shape = keep_ratio_shape(ori_shape, input_size)
    batch = build_synthetic_batch(1, input_size, num_classes=num_classes, seed=seed,
                                  img_shape=img_shape, ori_shape=ori_shape)
    preds = []
    with evaluating(model):
        out = meter.time(lambda: preds.append(predict(model, batch, dtype)[0].pred_instances),
                         warmup=0, steps=1)
    del out['times_s']
    pred = preds[0]
    n = len(pred)
    shape = list(pred.masks.shape)
    ok = (shape[1:] == [ori_h, ori_w] and pred.masks.dtype == torch.bool
          and tuple(pred.bboxes.shape) == (n, 4) and tuple(pred.scores.shape) == (n, ))
    if n:
        ok = ok and float(pred.bboxes[:, 2].max()) <= ori_w + 1 \
            and float(pred.bboxes[:, 3].max()) <= ori_h + 1
    return dict(out, ok=bool(ok), detections=n, masks_shape=shape,
                mask_dtype=str(pred.masks.dtype), ori_shape=[ori_h, ori_w],
                img_shape=list(img_shape), dtype=dtype_name(dtype))


def setup_env(cfg: Config, device: torch.device) -> dict:
    """The config's ``env_cfg`` as training applies it: on CUDA the caching
    allocator's settings (``cuda_alloc_conf``, see
    :func:`~bipa.utils.setup_cuda_allocator`), and ``cudnn.benchmark`` unless
    ``randomness.deterministic`` (as ``Runner`` does). The settings in effect."""
    alloc_conf = setup_cuda_allocator(cfg) if device.type == 'cuda' else None
    env = cfg.get('env_cfg', {})
    torch.backends.cudnn.benchmark = bool(env.get('cudnn_benchmark')) and \
        not cfg.get('randomness', {}).get('deterministic')
    return dict(alloc_conf=alloc_conf or '', cudnn_benchmark=torch.backends.cudnn.benchmark)


def cap_cuda_memory(device: torch.device, cap_gb: Optional[float]) -> Optional[dict]:
    """Limit this process's CUDA caching allocator to ``cap_gb`` (1e9 bytes)
    of ``device``; the cap and the device's total, or None without a cap."""
    if cap_gb is None:
        return None
    if device.type != 'cuda':
        raise ValueError(f'memory_cap_gb={cap_gb:g} needs a CUDA device, not {device}')
    index = torch.cuda.current_device() if device.index is None else device.index
    total = torch.cuda.get_device_properties(index).total_memory
    if not 0 < cap_gb * 1e9 <= total:
        raise ValueError(f'memory_cap_gb={cap_gb:g} must be in (0, {total / 1e9:.1f}], '
                         f'the memory of {torch.cuda.get_device_name(index)}')
    torch.cuda.set_per_process_memory_fraction(cap_gb * 1e9 / total, index)
    return dict(cap_gb=cap_gb, total_gb=total / 1e9)


def cuda_memory(device: torch.device) -> dict:
    """The device's memory now: used by all processes (``mem_get_info``),
    this process's cache, their difference (mostly the CUDA context, if the
    process is alone on the device) and nvidia-smi's figure for this process."""
    free, total = torch.cuda.mem_get_info(device)
    reserved = torch.cuda.memory_reserved(device)
    out = dict(total_mib=total / 2**20, device_used_mib=(total - free) / 2**20,
               reserved_mib=reserved / 2**20,
               context_mib=(total - free - reserved) / 2**20, nvidia_smi_process_mib=None)
    try:
        query = subprocess.run(['nvidia-smi', '--query-compute-apps=pid,used_memory',
                                '--format=csv,noheader,nounits'],
                               capture_output=True, text=True, timeout=20)
        for line in query.stdout.splitlines():
            pid, used = (x.strip() for x in line.split(','))
            if pid == str(os.getpid()):
                out['nvidia_smi_process_mib'] = float(used)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass  # not there, or another format: mem_get_info's figure stands
    return out


# --- the whole run -------------------------------------------------------------


def run_batch_size(model, wrapper: OptimWrapper, meter: Meter, batch: dict,
                   options: BenchmarkOptions, amp_dtype: Optional[torch.dtype],
                   test_dtype: Optional[torch.dtype]) -> dict:
    """Train and test phases of ``batch``, and the floor and breakdown if
    ``options`` ask for them."""
    batch_size = len(batch['inputs'])
    with torch.no_grad():  # what the model really gets
        shape = model.data_preprocessor(copy.deepcopy(batch), True)['inputs'].shape
    run = dict(batch_size=batch_size, model_input_shape=list(shape))
    counter = PositiveCounter(model.roi_head.mask_roi_extractor)
    try:
        run['train'] = time_train(model, wrapper, batch, meter, counter)
    finally:
        counter.remove()
    run['test'] = time_test(model, batch, meter, test_dtype)
    for key in ('train', 'test'):
        run[key]['images_per_s'] = batch_size / run[key]['median_s']
    if options.parts:
        run['parts'] = guarded(lambda: measure_floor(
            model, batch, meter, amp_dtype, counter, run['train']['median_s'], options.seed))
    if options.breakdown:
        run['breakdown'] = guarded(lambda: measure_breakdown(
            model, wrapper, batch, options.breakdown_steps, meter.device))
    return run


def run_benchmark(config: str, device: torch.device, options: BenchmarkOptions, *,
                  cfg_options: Optional[dict] = None) -> dict:
    """Every number of the benchmark of ``config`` on ``device``, the model
    built once, as one JSON-ready dict (``runs``: one per batch size)."""
    set_random_seed(options.seed)
    cfg = load_config(config, cfg_options=cfg_options)
    input_size = input_size_of(cfg, options.input_size)
    if options.input_size:  # BiPA pads every image to this fixed size
        cfg.model.data_preprocessor.pad_size_divisor = options.input_size
    batch_sizes = batch_sizes_of(cfg, options.batch_sizes)
    env = setup_env(cfg, device)
    memory_cap = cap_cuda_memory(device, options.memory_cap_gb)
    start = time.perf_counter()
    model, dropped = build_random_model(cfg, device)
    build_s = time.perf_counter() - start
    wrapper, amp_dtype, note = build_wrapper(model, cfg, device)
    test_dtype = inference_dtype(cfg, options.test_dtype)
    meter = Meter(device, options.warmup, options.steps)
    num_classes = model.roi_head.bbox_head.num_classes

    def batch(size: int, seed: int) -> dict:
        return build_synthetic_batch(size, input_size, num_instances=options.instances,
                                     num_classes=num_classes, seed=seed)

    params = list(model.parameters())
    results = dict(
        config=config, cfg_options=cfg_options or {}, device=str(device),
        device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                     else f'cpu ({torch.get_num_threads()} threads)'),
        torch=torch.__version__, batch_sizes=batch_sizes, input_size=input_size,
        instances=options.instances, steps=options.steps, warmup=options.warmup,
        train_amp=dtype_name(amp_dtype), amp_note=note, test_dtype=dtype_name(test_dtype),
        dropped_weights=dropped, mem_kind=meter.mem_kind, build_s=build_s,
        memory_cap=memory_cap, **env,
        grad_mode=getattr(model.backbone, 'grad_mode', None),
        params_total=sum(p.numel() for p in params),
        params_trainable=sum(p.numel() for p in params if p.requires_grad))
    results['runs'] = [run_batch_size(model, wrapper, meter, batch(n, options.seed), options,
                                      amp_dtype, test_dtype) for n in batch_sizes]
    if options.search:
        results['search'] = guarded(lambda: measure_search(
            model, meter, [batch(batch_sizes[0], options.seed + 1000 + k)
                           for k in range(options.search_batches)],
            amp_dtype=amp_dtype, test_dtype=test_dtype, trials=options.trials,
            repeats=options.search_repeats, seed=options.seed))
    if options.predict:
        results['predict'] = guarded(lambda: check_predict(
            model, meter, options.predict, input_size, num_classes=num_classes,
            dtype=test_dtype, seed=options.seed))
    if device.type == 'cuda':
        results['cuda_memory'] = cuda_memory(device)
    return results
