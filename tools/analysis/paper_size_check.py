"""End-to-end check of the paper-size model: stand-in weights, a small UIIS-like
set, a shrunk bilevel run killed with SIGKILL and resumed, then a test.

    python tools/analysis/paper_size_check.py [--arch vit_h|tiny] [--out DIR] \
        [--K-a 5] [--K-b 3] [--K-c 5] [--ckpt-interval 3] [--kill-after-iter N] \
        [--workers 1] [--train-images 6] [--val-images 3] [--seed 0] [--threads N] \
        [--stall-min M] [--validate]

1. Stand-in weights with random values in the official layouts, seeded (the
   same seed writes the same files; files a previous run wrote are reused):
   SAM's ``sam_vit_h_4b8939.pth`` (``segment_anything.sam_model_registry
   ['vit_h']()``: ``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``)
   and torchvision's ``resnet50-0676ba61.pth``; ``--arch tiny`` makes those of
   the demo's tiny SAM and ResNet-18 of width 8 instead.
2. A dataset in the layout the config reads (``configs/bipa_uiis.py``: UIIS's
   ``annotations/{train,val}.json`` and ``{train,val}/``): JPEGs of 1280x720
   and 960x1280, a few synthetic objects each (``bipa.datasets.synthetic``).
3. ``tools/train.py CONFIG`` shrunk (batch 1, ``T=1``, ``K_a``/``K_c`` in
   iterations, ``K_b`` trials, the epoch-based schedulers made iteration-based),
   SIGKILLed once ``last_checkpoint`` names ``iter_<kill-after-iter>.pth`` (by
   default the checkpoint before the search: the kill lands in the search), then
   ``--resume``d to the end (mmengine's validation at the last iteration
   skipped unless ``--validate``), then ``tools/test.py`` on the last
   checkpoint, with the config as it is plus the data and weight paths.
   Without CUDA the config's ``AmpOptimWrapper`` (which needs CUDA) is replaced
   by an ``OptimWrapper`` with the same optimizer, through a small config
   written into ``--out``; on a GPU the config runs as it is (bf16 AMP).
4. Prints each phase's wall time, the peak RSS of each process, every
   checkpoint written (size) and how many are kept, the exit codes, COCO bbox /
   segm mAP of the test, and a markdown table. Exit status 1 names the step
   that failed (its log is in ``--out``/logs); 2 is bad input.

On 2 CPU cores ``--arch vit_h`` takes about half an hour and 12 GB of memory;
``--arch tiny`` (``configs/bipa_demo_synthetic.py``) takes a minute or two.
"""
import argparse
import json
import os
import os.path as osp
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GB = 1e9


@dataclass(frozen=True)
class Arch:
    """What one ``--arch`` runs: its config and the file names of its stand-ins."""

    config: str
    sam_file: str
    resnet_file: str
    description: str


ARCHES: Dict[str, Arch] = {
    'vit_h': Arch('configs/bipa_uiis.py', 'sam_vit_h_4b8939.pth', 'resnet50-0676ba61.pth',
                  'SAM ViT-H + ResNet-50 (the paper config)'),
    'tiny': Arch('configs/bipa_demo_synthetic.py', 'sam_vit-tiny_standin.pth',
                 'resnet18-w8_standin.pth', "the demo's tiny SAM + ResNet-18 of width 8"),
}


@dataclass
class Phase:
    """One step of the check: its outcome, time and memory."""

    name: str
    ok: bool = False
    wall_s: float = 0.0
    peak_rss: Optional[int] = None  # bytes
    exit: str = ''
    notes: List[str] = field(default_factory=list)
    log: Optional[str] = None


class CheckFailed(Exception):
    """A step failed; the message names it."""


# --- small helpers -------------------------------------------------------------


def fmt_bytes(n: Optional[float]) -> str:
    """``n`` bytes as MB below 1 GB, else GB (powers of 10)."""
    if n is None:
        return '-'
    return f'{n / GB:.2f} GB' if n >= GB else f'{n / 1e6:.1f} MB'


def fmt_time(seconds: float) -> str:
    """Seconds below two minutes, else minutes."""
    return f'{seconds:.1f} s' if seconds < 120 else f'{seconds / 60:.1f} min'


def say(message: str) -> None:
    print(f'[psc] {message}', flush=True)


def maxrss_bytes(ru_maxrss: int) -> int:
    """``ru_maxrss`` in bytes (kilobytes on Linux, bytes on macOS)."""
    return ru_maxrss if sys.platform == 'darwin' else ru_maxrss * 1024


def child_env(threads: Optional[int] = None) -> Dict[str, str]:
    """The environment of the tools: the repository root first on PYTHONPATH,
    and ``OMP_NUM_THREADS`` when ``threads`` is given."""
    env = dict(os.environ)
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, env.get('PYTHONPATH')) if p)
    return env


def machine_line() -> str:
    """CPUs, memory and GPU of this machine, in one line."""
    import torch
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    mem = ''
    try:
        with open('/proc/meminfo') as f:
            info = dict(line.split(':', 1) for line in f)
        total = int(info['MemTotal'].split()[0]) * 1024
        avail = int(info['MemAvailable'].split()[0]) * 1024
        mem = f', {fmt_bytes(total)} RAM ({fmt_bytes(avail)} available)'
    except (OSError, KeyError, ValueError):
        pass
    gpu = (f', GPU {torch.cuda.get_device_name(0)}' if torch.cuda.is_available()
           else ', no GPU')
    load = f', load {os.getloadavg()[0]:.2f}' if hasattr(os, 'getloadavg') else ''
    return f'{cpus} CPUs{mem}{gpu}{load}; torch {torch.__version__}'


# --- 1. stand-in weights ---------------------------------------------------------


def build_sam_standin(cfg) -> dict:
    """SAM's state dict (official layout) for the config's arch, random init:
    ``sam_model_registry[name]()`` for a named arch, else the same modules built
    from the arch dict and the mask head's decoder sizes."""
    from segment_anything import sam_model_registry
    from segment_anything.modeling import PromptEncoder, Sam

    from bipa.models.sam_parts import build_image_encoder, build_mask_decoder, resolve_sam_arch
    arch = cfg.model.backbone.arch
    if isinstance(arch, str):
        return sam_model_registry[arch]().state_dict()
    arch = resolve_sam_arch(arch.to_dict() if hasattr(arch, 'to_dict') else dict(arch))
    head = cfg.model.roi_head.mask_head
    dim, size = arch['out_chans'], arch['img_size']
    sam = Sam(image_encoder=build_image_encoder(arch),
              prompt_encoder=PromptEncoder(embed_dim=dim,
                                           image_embedding_size=(size // arch['patch_size'], ) * 2,
                                           input_image_size=(size, size), mask_in_chans=16),
              mask_decoder=build_mask_decoder(embed_dim=head.get('embed_dim', 256),
                                              mlp_dim=head.get('decoder_mlp_dim', 2048),
                                              num_heads=head.get('decoder_num_heads', 8)))
    return sam.state_dict()


def build_resnet_standin(cfg) -> dict:
    """The local backbone's weights, random init: torchvision's ResNet-50 layout
    for the paper's ResNet-50, else mmdet's ResNet of the config (same key names)."""
    backbone = cfg.model.local_backbone
    if backbone.get('depth') == 50 and backbone.get('base_channels', 64) == 64:
        import torchvision
        return torchvision.models.resnet50().state_dict()
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    kwargs = {k: v for k, v in backbone.items() if k != 'init_cfg'}
    return MODELS.build(kwargs).state_dict()


def make_standins(cfg, arch: Arch, out_dir: str, seed: int) -> Tuple[Dict[str, str], List[str]]:
    """Write (or reuse) the SAM and ResNet stand-ins in ``out_dir/weights``.
    Returns ``{'sam': path, 'resnet': path}`` and one note per file."""
    import torch
    weights_dir = osp.join(out_dir, 'weights')
    os.makedirs(weights_dir, exist_ok=True)
    manifest_path = osp.join(weights_dir, 'standins.json')
    manifest = {}
    if osp.isfile(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    paths, notes = {}, []
    for key, name, build in (('sam', arch.sam_file, build_sam_standin),
                             ('resnet', arch.resnet_file, build_resnet_standin)):
        path = paths[key] = osp.join(weights_dir, name)
        entry = manifest.get(name, {})
        if (osp.isfile(path) and entry.get('seed') == seed
                and entry.get('size') == os.path.getsize(path)):
            say(f'reusing {path} ({fmt_bytes(entry["size"])}, seed {seed}: the size an '
                'earlier run wrote)')
            notes.append(f'{name} {fmt_bytes(entry["size"])} (reused)')
            continue
        start = time.time()
        torch.manual_seed(seed)
        state = build(cfg)
        tmp = path + '.tmp'
        torch.save(state, tmp)
        os.replace(tmp, path)
        numel = sum(t.numel() for t in state.values())
        del state
        size = os.path.getsize(path)
        manifest[name] = dict(seed=seed, size=size, tensors_numel=numel, config=arch.config)
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f, indent=1)
        say(f'wrote {path} ({fmt_bytes(size)}, {numel / 1e6:.1f}M values, seed {seed}, '
            f'{time.time() - start:.0f} s)')
        notes.append(f'{name} {fmt_bytes(size)}')
    return paths, notes


# --- 2. the dataset --------------------------------------------------------------


def dataset_splits(cfg) -> List[Tuple[str, str]]:
    """The distinct ``(ann_file, image folder)`` of the config's train, val and
    test dataloaders, training first."""
    splits = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        split = (dataset.ann_file, dataset.data_prefix.get('img', ''))
        if split not in splits:
            splits.append(split)
    return splits


def dataset_classes(cfg) -> Tuple[str, ...]:
    """The class names of the config's training dataset."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    import bipa  # noqa: F401  (registers the datasets)
    init_default_scope('mmdet')
    dataset = cfg.train_dataloader.dataset
    meta = dataset.get('metainfo') or DATASETS.get(dataset.type).METAINFO
    return tuple(meta['classes'])


def write_dataset(cfg, data_root: str, counts: Sequence[int], seed: int) -> List[str]:
    """The config's splits under ``data_root``: ``counts[i]`` images for split
    ``i`` (training first), alternately 1280x720 and 960x1280 JPEGs with 2-6
    synthetic objects, COCO json with the dataset's categories. Returns a note
    per split."""
    import cv2
    import numpy as np

    from bipa.datasets.synthetic import render_synthetic_image
    from bipa.datasets.synthetic.coco_writer import JPEG_QUALITY, _annotation, image_rng
    from bipa.datasets.underwater import SYNTHETIC_CLASSES
    classes = dataset_classes(cfg)
    missing = [c for c in SYNTHETIC_CLASSES if c not in classes]
    if missing:
        raise CheckFailed(f'data: the synthetic classes {missing} are not classes of '
                          f'{cfg.train_dataloader.dataset.type} {classes}')
    categories = [dict(id=i + 1, name=c, supercategory='underwater')
                  for i, c in enumerate(classes)]
    notes = []
    splits = dataset_splits(cfg)
    for (ann_file, prefix), count in zip(splits, counts):
        split = osp.splitext(osp.basename(ann_file))[0]
        img_dir = osp.join(data_root, prefix)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(osp.dirname(osp.join(data_root, ann_file)), exist_ok=True)
        images, anns, index = [], [], 0
        for i in range(count):
            h, w = (720, 1280) if i % 2 == 0 else (1280, 960)
            while True:  # the first scene with 2-6 objects: a few instances each
                sample = render_synthetic_image(image_rng(seed, split, index), (h, w), 0.12,
                                                'underwater')
                index += 1
                if 2 <= len(sample['masks']) <= 6:
                    break
            name = f'{split}_{i:05d}.jpg'
            ok, buf = cv2.imencode('.jpg', cv2.cvtColor(sample['image'], cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise CheckFailed(f'data: could not encode {name}')
            buf.tofile(osp.join(img_dir, name))
            images.append(dict(id=i + 1, file_name=name, height=h, width=w))
            for mask, label in zip(sample['masks'], sample['labels']):
                cat = classes.index(SYNTHETIC_CLASSES[int(label)]) + 1
                anns.append(_annotation(np.asarray(mask), len(anns) + 1, i + 1, cat))
        with open(osp.join(data_root, ann_file), 'w') as f:
            json.dump(dict(info=dict(description='paper_size_check stand-in data', seed=seed),
                           licenses=[], images=images, annotations=anns,
                           categories=categories), f)
        notes.append(f'{prefix.rstrip("/") or split}: {count} images, {len(anns)} instances')
    return notes


# --- 3. the runs -----------------------------------------------------------------


def _scaled(value, scale: float, length: int):
    """An epoch count (or list of them) of the original phase, moved to the
    shrunk phase of ``length`` iterations (kept within 1..length-1)."""
    if isinstance(value, (list, tuple)):
        return sorted({_scaled(v, scale, length) for v in value})
    return int(min(max(round(value * scale), 1), max(length - 1, 1)))


def scheduler_options(key: str, schedulers, old_units: Optional[int],
                      length: int) -> Dict[str, object]:
    """Overrides that make each epoch-based scheduler of ``key`` count
    iterations of a phase of ``length`` iterations, its milestones, begin, end,
    T_max and step_size at the same fractions of the phase (``old_units``: the
    phase's length in the config's epochs; None: leave the values)."""
    options = {}
    for i, scheduler in enumerate(schedulers or []):
        if not scheduler.get('by_epoch', True):
            continue  # iteration-based already: the loop cuts it at the phase's end
        options[f'{key}.{i}.by_epoch'] = False
        if not old_units:
            continue
        for name in ('milestones', 'begin', 'end', 'T_max', 'step_size'):
            if name in scheduler:
                value = scheduler[name]
                options[f'{key}.{i}.{name}'] = (
                    0 if name == 'begin' and value == 0
                    else _scaled(value, length / old_units, length + 1) if name == 'end'
                    else _scaled(value, length / old_units, length))
    return options


def train_options(cfg, args, data_root: str, weights: Dict[str, str]) -> Dict[str, object]:
    """The ``--cfg-options`` of the shrunk run: schedule, checkpoints, loaders,
    data root and stand-in weights."""
    train_cfg = cfg.train_cfg
    epochs = train_cfg.get('unit', 'epoch') == 'epoch'
    options = {
        'train_cfg.T': 1, 'train_cfg.K_a': args.K_a, 'train_cfg.K_b': args.K_b,
        'train_cfg.K_c': args.K_c, 'train_cfg.unit': 'iter',
        'train_cfg.search.num_workers': args.workers,
        'default_hooks.checkpoint.interval': args.ckpt_interval,
        'default_hooks.logger.interval': 1,
    }
    if not args.validate:  # mmengine validates at the last iteration unless val_begin is later
        options['train_cfg.val_begin'] = args.K_a + args.K_c + 1
    options.update(scheduler_options(
        'param_scheduler', cfg.get('param_scheduler'),
        train_cfg.get('T', 1) * train_cfg.get('K_a', 1) if epochs else None, args.K_a))
    finetune = train_cfg.get('finetune') or {}
    options.update(scheduler_options(
        'train_cfg.finetune.param_scheduler', finetune.get('param_scheduler'),
        train_cfg.get('K_c') if epochs else None, args.K_c))
    options.update(data_options(cfg, args, data_root, weights))
    options['train_dataloader.batch_size'] = 1
    return options


def data_options(cfg, args, data_root: str, weights: Dict[str, str]) -> Dict[str, object]:
    """The data root of every dataloader and evaluator, the loaders' workers,
    and the stand-in weights (also what tools/test.py needs)."""
    root = data_root.rstrip('/') + '/'
    options: Dict[str, object] = {
        'model.sam_checkpoint': weights['sam'],
        # _delete_: the demo config's init_cfg is None, which a dict cannot merge into
        'model.local_backbone.init_cfg._delete_': True,
        'model.local_backbone.init_cfg.type': 'Pretrained',
        'model.local_backbone.init_cfg.checkpoint': weights['resnet'],
    }
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        options[f'{split}_dataloader.dataset.data_root'] = root
        options[f'{split}_dataloader.num_workers'] = args.workers
        if args.workers == 0:
            options[f'{split}_dataloader.persistent_workers'] = False
        evaluator = cfg.get(f'{split}_evaluator')
        if isinstance(evaluator, dict) and 'ann_file' in evaluator:
            options[f'{split}_evaluator.ann_file'] = root + loader.dataset.ann_file
    return options


def option_args(options: Dict[str, object]) -> List[str]:
    """``--cfg-options`` arguments (``key=value``, lists as ``[a,b]``)."""
    def value(v):
        if isinstance(v, (list, tuple)):
            return '[' + ','.join(str(x) for x in v) + ']'
        return str(v)
    return ['--cfg-options'] + [f'{k}={value(v)}' for k, v in options.items()]


def fp32_args(cfg, config: str) -> Tuple[List[str], Optional[str]]:
    """How tools/train.py trains ``config`` here: ``[config]`` as it is, or,
    when it asks for ``AmpOptimWrapper`` and there is no CUDA, in float32
    (``--no-amp``). Returns those arguments and a note (None when the config
    runs as it is)."""
    import torch
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') != 'AmpOptimWrapper' or torch.cuda.is_available():
        return [config], None
    return [config, '--no-amp'], (f'AmpOptimWrapper ({wrapper.get("dtype") or "fp16"}) needs '
                                  'CUDA: float32 (tools/train.py --no-amp)')


# --- running the tools -------------------------------------------------------------

PROGRESS = re.compile(r'(\[psc\] .*|Iter\(train\) \[\s*\d+/\d+\].*?loss: [\d.]+'
                      r'|phase=\w+ round=\d+ trial=\d+.*|prompt search round.*'
                      r'|Resuming the .*|fine-tuning phase from iteration \d+'
                      r'|coco/\w+_mAP: [\d.-]+)')


@dataclass
class Written:
    """One checkpoint file as a run wrote it."""

    name: str
    size: int
    run: str  # which tool run wrote it

    @property
    def iteration(self) -> int:
        return int(self.name[5:-4])


class Watch:
    """Follows a tool's log (progress lines), the checkpoints it writes (into
    ``written``, shared by the runs of a work dir) and, for the run to be
    killed, when to kill it."""

    def __init__(self, log_path: str, run: str, work_dir: Optional[str] = None,
                 written: Optional[List[Written]] = None,
                 kill_after_iter: Optional[int] = None) -> None:
        self.log_path, self.run, self.work_dir = log_path, run, work_dir
        self.written = [] if written is None else written
        self.kill_after_iter = kill_after_iter
        self.offset, self.last_line, self.killed_at = 0, '', None
        self.last_raw, self.last_activity, self.stalled = '', time.time(), False
        self._seen = set()  # (name, inode, mtime): a file written again is new

    def poll(self, start: float) -> bool:
        """Print new progress lines and record new checkpoints; True when the
        process is to be killed now."""
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            data = b''
        data = data[:data.rfind(b'\n') + 1]  # whole lines only
        self.offset += len(data)
        lines = data.decode('utf-8', errors='replace').splitlines()
        if any(line.strip() for line in lines):
            self.last_activity = time.time()
            self.last_raw = [line.strip() for line in lines if line.strip()][-1]
        for line in lines:
            match = PROGRESS.search(line)
            if match:
                self.last_line = match.group(1).replace('[psc] ', '')
                say(f'  {time.time() - start:7.1f} s  {self.last_line}')
        kill = False
        if self.work_dir and osp.isdir(self.work_dir):
            for name in sorted(os.listdir(self.work_dir)):
                match = re.fullmatch(r'iter_(\d+)\.pth', name)
                if not match:
                    continue
                try:  # written whole, then renamed: the size is final
                    stat = os.stat(osp.join(self.work_dir, name))
                except OSError:
                    continue
                key = (name, stat.st_ino, stat.st_mtime_ns)
                if key in self._seen:
                    continue
                self._seen.add(key)
                if start > stat.st_mtime:  # an earlier run's: already recorded
                    continue
                self.written.append(Written(name, stat.st_size, self.run))
                self.last_activity = time.time()
                say(f'  {time.time() - start:7.1f} s  checkpoint {name} '
                    f'({fmt_bytes(stat.st_size)})')
            # once named in last_checkpoint (after its rename): what --resume starts from
            named = self.named_checkpoint()
            if (self.kill_after_iter is not None and self.killed_at is None and named
                    and int(named[5:-4]) >= self.kill_after_iter):
                self.killed_at = named
                kill = True
        return kill

    def named_checkpoint(self) -> Optional[str]:
        """The iter_N.pth that the work dir's ``last_checkpoint`` names, if any."""
        try:
            with open(osp.join(self.work_dir, 'last_checkpoint')) as f:
                name = osp.basename(f.read().strip())
        except OSError:
            return None
        return name if re.fullmatch(r'iter_\d+\.pth', name) else None


def run_tool(phase: Phase, cmd: List[str], log_path: str, watch: Watch,
             threads: Optional[int] = None, stall_s: Optional[float] = None) -> int:
    """Run ``cmd`` from the repository root (PYTHONPATH set), output to
    ``log_path``; SIGKILL its process group when ``watch`` says so, or when it
    has neither logged nor written a checkpoint for ``stall_s`` seconds
    (``watch.stalled``). Fills the phase's wall time and the child's peak RSS;
    returns the exit status (negative: the signal)."""
    say('$ ' + ' '.join(shlex.quote(c) for c in cmd))
    phase.log = log_path
    start = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(threads), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        status, usage = None, None
        try:
            while status is None:
                pid, raw, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    status = os.waitstatus_to_exitcode(raw)
                    break
                kill = watch.poll(start)
                if not kill and stall_s and time.time() - watch.last_activity > stall_s:
                    watch.stalled = kill = True
                if kill:
                    os.killpg(proc.pid, signal.SIGKILL)
                    why = (f'no output for {stall_s / 60:.0f} min' if watch.stalled
                           else f'last_checkpoint names {watch.killed_at}')
                    say(f'  {time.time() - start:7.1f} s  SIGKILL to the process group of '
                        f'{proc.pid} ({why})')
                    _, raw, usage = os.wait4(proc.pid, 0)
                    status = os.waitstatus_to_exitcode(raw)
                    break
                time.sleep(0.2)
        except BaseException:
            if status is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise
        proc.returncode = status  # reaped by wait4
    watch.poll(start)
    phase.wall_s = time.time() - start
    phase.peak_rss = maxrss_bytes(usage.ru_maxrss)
    phase.exit = (f'{status}' if status >= 0 else f'{status} ({signal.Signals(-status).name})')
    return status


def log_tail(path: Optional[str], lines: int = 20) -> str:
    """The last lines of a log, indented."""
    if not path or not osp.isfile(path):
        return ''
    with open(path, errors='replace') as f:
        tail = f.read().splitlines()[-lines:]
    return '\n'.join('    | ' + line for line in tail)


def study_trials(work_dir: str) -> Dict[str, int]:
    """``{state: count}`` of the trials in the run's Optuna study (empty if none)."""
    path = osp.join(work_dir, 'prompt_search.db')
    if not osp.isfile(path):
        return {}
    try:
        with sqlite3.connect(f'file:{path}?mode=ro', uri=True, timeout=5) as db:
            return dict(db.execute('SELECT state, COUNT(*) FROM trials GROUP BY state'))
    except sqlite3.Error:
        return {}


def test_metrics(test_dir: str) -> Dict[str, float]:
    """The COCO metrics tools/test.py's logger wrote (the newest run's json)."""
    found = []
    for sub in os.listdir(test_dir) if osp.isdir(test_dir) else []:
        path = osp.join(test_dir, sub, f'{sub}.json')
        if osp.isfile(path):
            found.append(path)
    if not found:
        return {}
    with open(max(found, key=osp.getmtime)) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return {k: v for line in lines for k, v in line.items() if k.startswith('coco/')}


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``last_checkpoint`` names, else the highest iter_N.pth."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            path = f.read().strip()
        if path and osp.isfile(path):
            return path
    found = [n for n in os.listdir(work_dir) if re.fullmatch(r'iter_\d+\.pth', n)]
    if not found:
        return None
    return osp.join(work_dir, max(found, key=lambda n: int(n[5:-4])))


# --- the check -------------------------------------------------------------------


def run_step(args: argparse.Namespace) -> int:
    """``--step standins|data``: one in-process step, run by the check as a child
    of its own (its time and memory its own, its memory freed after), writing
    its notes (and paths) as json to ``--step-result``."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, args.config), import_custom_modules=False)
    try:
        if args.step == 'standins':
            paths, notes = make_standins(cfg, ARCHES[args.arch], args.out, args.seed)
            result = dict(paths=paths, notes=notes)
        else:
            data_root = osp.join(args.out, 'data')
            if osp.isdir(data_root):
                shutil.rmtree(data_root)
            counts = [args.train_images] + [args.val_images] * 2
            result = dict(notes=write_dataset(cfg, data_root, counts, args.seed))
    except CheckFailed as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    with open(args.step_result, 'w') as f:
        json.dump(result, f)
    return 0


def last_error(path: Optional[str]) -> str:
    """The last line of a log that reads as an error (``error: ...`` or
    ``XError: ...``), or ''."""
    if not path or not osp.isfile(path):
        return ''
    with open(path, errors='replace') as f:
        lines = [line.strip() for line in f
                 if re.match(r'\s*(error: |[\w.]*(Error|Exception|Interrupt)\b)', line)]
    return lines[-1] if lines else ''


def summary_table(phases: List[Phase], written: List[Written], kept: List[str]) -> str:
    """The markdown table of the check."""
    rows = ['| step | wall time | peak RSS | exit | details |', '|---|---|---|---|---|']
    for p in phases:
        rows.append(f'| {p.name} | {fmt_time(p.wall_s)} | {fmt_bytes(p.peak_rss)} | '
                    f'{p.exit or "-"} | {"; ".join(p.notes)} |')
    if written:
        sizes = ', '.join(f'{w.name} {fmt_bytes(w.size)} ({w.run})' for w in written)
        rows.append(f'| checkpoints | | | | {len(written)} written: {sizes}; '
                    f'{len(kept)} kept: {", ".join(kept) or "none"} |')
    return '\n'.join(rows)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', choices=sorted(ARCHES), default='vit_h',
                   help='vit_h: configs/bipa_uiis.py (paper size); tiny: the demo config, '
                   'to check this script in a minute or two')
    p.add_argument('--config', default=None, help="another config than the arch's")
    p.add_argument('--out', default=None,
                   help='scratch dir (default: work_dirs/paper_size_check[_tiny])')
    p.add_argument('--K-a', dest='K_a', type=int, default=5, help='adaptation iterations')
    p.add_argument('--K-b', dest='K_b', type=int, default=3, help='search trials')
    p.add_argument('--K-c', dest='K_c', type=int, default=5, help='fine-tuning iterations')
    p.add_argument('--ckpt-interval', type=int, default=3,
                   help="CheckpointHook's interval in iterations")
    p.add_argument('--kill-after-iter', type=int, default=None,
                   help='SIGKILL the first run once last_checkpoint names iter_N.pth (N >= '
                   'this; default: K_a, the checkpoint before the search)')
    p.add_argument('--workers', type=int, default=1, help='dataloader workers')
    p.add_argument('--train-images', type=int, default=6)
    p.add_argument('--val-images', type=int, default=3,
                   help='images of the val split (and of the test split when it is another)')
    p.add_argument('--seed', type=int, default=0, help='stand-in weights and data')
    p.add_argument('--threads', type=int, default=None,
                   help='OMP_NUM_THREADS of the tools (default: theirs, the idle CPUs at start)')
    p.add_argument('--stall-min', type=float, default=None,
                   help='kill a tool that neither logs nor writes a checkpoint for this long '
                   'and fail (default: 20 for vit_h, 3 for tiny)')
    p.add_argument('--validate', action='store_true',
                   help='validate at the end of training as mmengine does (default: skipped '
                   'through train_cfg.val_begin; tools/test.py evaluates the same model)')
    p.add_argument('--step', choices=('standins', 'data'), help=argparse.SUPPRESS)
    p.add_argument('--step-result', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ('K_a', 'K_b', 'K_c', 'ckpt_interval', 'train_images', 'val_images'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.workers < 0 or args.seed < 0:
        p.error('--workers and --seed must not be negative')
    if args.threads is not None and args.threads < 1:
        p.error('--threads must be at least 1')
    if args.stall_min is None:
        args.stall_min = 20.0 if args.arch == 'vit_h' else 3.0
    if args.stall_min <= 0:
        p.error('--stall-min must be positive')
    total = args.K_a + args.K_c
    if args.kill_after_iter is None:
        args.kill_after_iter = args.K_a
    if not 1 <= args.kill_after_iter < total:
        p.error(f'--kill-after-iter must be in 1..{total - 1} (the run has {total} iterations)')
    if args.kill_after_iter != args.K_a and args.kill_after_iter % args.ckpt_interval:
        p.error(f'--kill-after-iter {args.kill_after_iter} is neither K_a (the checkpoint '
                f'before the search) nor a multiple of --ckpt-interval {args.ckpt_interval}: '
                'no checkpoint would trigger the kill')
    args.config = args.config or ARCHES[args.arch].config
    if not osp.isfile(osp.join(ROOT, args.config)):
        p.error(f'config not found: {args.config}')
    out = args.out or osp.join('work_dirs',
                               'paper_size_check' + ('' if args.arch == 'vit_h' else '_tiny'))
    args.out = osp.abspath(out)
    if osp.exists(args.out) and not osp.isdir(args.out):
        p.error(f'--out {out} exists and is not a folder')
    return args


class Check:
    """The check's state: its phases, the checkpoints seen, and the paths."""

    def __init__(self, args: argparse.Namespace, argv: List[str]) -> None:
        from mmengine.config import Config
        self.args, self.argv = args, argv
        self.cfg = Config.fromfile(osp.join(ROOT, args.config), import_custom_modules=False)
        self.logs = osp.join(args.out, 'logs')
        self.work_dir = osp.join(args.out, 'work_dir')
        self.data_root = osp.join(args.out, 'data')
        self.test_dir = osp.join(args.out, 'test')
        self.phases: List[Phase] = []
        self.written: List[Written] = []
        self.kept: List[str] = []
        self.weights: Dict[str, str] = {}
        self.train_cmd: List[str] = []

    def phase(self, name: str) -> Phase:
        phase = Phase(name)
        self.phases.append(phase)
        return phase

    def fail(self, phase: Phase, what: str) -> None:
        """Stop the check: ``phase`` failed with ``what``."""
        raise CheckFailed(f'{phase.name}: {what}')

    def tool(self, phase: Phase, cmd: List[str], watch: Watch) -> int:
        """:func:`run_tool` with the check's threads and stall limit; a
        process that stalled fails the phase."""
        stall_s = self.args.stall_min * 60
        status = run_tool(phase, cmd, watch.log_path, watch, self.args.threads, stall_s)
        if watch.stalled:
            final = f'iter_{self.args.K_a + self.args.K_c}.pth'
            done = (watch.work_dir is not None
                    and any(w.name == final and w.run == watch.run for w in watch.written))
            where = f'after writing {final}, its last checkpoint: it hung at exit' if done else ''
            phase.notes.append(f'hung: no output for {self.args.stall_min:g} min, killed'
                               + (f' {where}' if where else ''))
            self.fail(phase, f'no output and no checkpoint for {self.args.stall_min:g} min, '
                      f'so it was killed{" " + where if where else " (hung?)"}; its last log '
                      f'line: `{watch.last_raw[:200]}`')
        return status

    def list_kept(self) -> None:
        """The checkpoint files in the work dir now."""
        if osp.isdir(self.work_dir):
            self.kept = sorted((n for n in os.listdir(self.work_dir)
                                if re.fullmatch(r'iter_\d+\.pth', n)),
                               key=lambda n: int(n[5:-4]))

    def step(self, name: str, label: str) -> dict:
        """Run ``--step name`` in a child process; its result."""
        phase = self.phase(label)
        result_path = osp.join(self.logs, f'{name}.json')
        if osp.exists(result_path):
            os.remove(result_path)
        cmd = [sys.executable, osp.abspath(__file__)] + self.argv + [
            '--step', name, '--step-result', result_path]
        log = osp.join(self.logs, f'{name}.log')
        status = self.tool(phase, cmd, Watch(log, name))
        if status != 0 or not osp.isfile(result_path):
            self.fail(phase, f'exited {phase.exit}: {last_error(log) or "see its log"}')
        with open(result_path) as f:
            result = json.load(f)
        phase.notes += result['notes']
        phase.ok = True
        return result

    def train_until_kill(self) -> None:
        """tools/train.py, SIGKILLed once the chosen checkpoint exists."""
        args = self.args
        config_args, note = fp32_args(self.cfg, args.config)
        options = train_options(self.cfg, args, self.data_root, self.weights)
        if osp.isdir(self.work_dir):
            shutil.rmtree(self.work_dir)
        self.train_cmd = ([sys.executable, 'tools/train.py'] + config_args
                          + ['--work-dir', self.work_dir] + option_args(options))
        phase = self.phase('train until SIGKILL')
        if note:
            phase.notes.append(note)
            say(f'   {note}')
        log = osp.join(self.logs, 'train.log')
        watch = Watch(log, 'train', self.work_dir, self.written,
                      kill_after_iter=args.kill_after_iter)
        status = self.tool(phase, self.train_cmd, watch)
        if watch.killed_at is None:
            self.fail(phase, f'exited {phase.exit} before last_checkpoint named '
                      f'iter_{args.kill_after_iter}.pth: {last_error(log) or "never killed"}')
        phase.notes.append(f'killed once last_checkpoint named {watch.killed_at}, '
                           f'{fmt_trials(self.work_dir)} then; last progress line: '
                           f'`{watch.last_line[:90]}`')
        phase.ok = status == -signal.SIGKILL

    def resume(self) -> str:
        """tools/train.py --resume to the end; returns the last checkpoint."""
        phase = self.phase('resume (--resume)')
        log = osp.join(self.logs, 'resume.log')
        watch = Watch(log, 'resume', self.work_dir, self.written)
        status = self.tool(phase, self.train_cmd + ['--resume'], watch)
        if status != 0:
            self.fail(phase, f'tools/train.py --resume exited {phase.exit}: '
                      f'{last_error(log) or "see its log"}')
        with open(log, errors='replace') as f:
            text = f.read()
        resumed = re.findall(r'Resuming the .*', text)
        validation = re.findall(r'coco/segm_mAP: ([\d.-]+)', text)
        final = last_checkpoint(self.work_dir)
        phase.notes.append(
            f'{resumed[0] if resumed else "no Resuming line in the log"}; ended with '
            f'{osp.basename(final) if final else "no checkpoint"}; '
            f'{fmt_trials(self.work_dir)} in the study'
            + (f'; its end-of-training validation: segm mAP {validation[-1]}'
               if validation else ''))
        expected = f'iter_{self.args.K_a + self.args.K_c}.pth'
        if final is None or osp.basename(final) != expected:
            self.fail(phase, f'the last checkpoint is {final}, not {expected}')
        if not resumed:
            self.fail(phase, 'the log has no "Resuming the ... phase" line')
        phase.ok = True
        return final

    def test(self, checkpoint: str) -> None:
        """tools/test.py on ``checkpoint`` with the config as it is (plus data
        and stand-in paths); reads its COCO metrics."""
        phase = self.phase('test')
        log = osp.join(self.logs, 'test.log')
        cmd = ([sys.executable, 'tools/test.py', self.args.config, checkpoint,
                '--work-dir', self.test_dir]
               + option_args(data_options(self.cfg, self.args, self.data_root, self.weights)))
        status = self.tool(phase, cmd, Watch(log, 'test'))
        if status != 0:
            self.fail(phase, f'tools/test.py exited {phase.exit}: '
                      f'{last_error(log) or "see its log"}')
        metrics = test_metrics(self.test_dir)
        if not metrics:
            self.fail(phase, f'no coco/* metrics in the json logs under {self.test_dir}')
        phase.notes.append(', '.join(
            f'{k[5:]} {metrics[k]:.3f}' for k in (
                'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')
            if k in metrics) + ' (random weights: near 0 is expected)')
        phase.ok = True

    def run(self) -> Optional[str]:
        """All steps; None when each passed, else the failure in one line."""
        args = self.args
        say('1. stand-in weights (random, official layouts)')
        self.weights = self.step('standins', 'stand-in weights')['paths']
        say(f'2. the dataset under {self.data_root}')
        self.step('data', 'data')
        say('   ' + '; '.join(self.phases[-1].notes))
        say(f'3. train (T=1, K_a={args.K_a}, K_b={args.K_b}, K_c={args.K_c} iterations), '
            f'SIGKILL after iter_{args.kill_after_iter}.pth, resume, test')
        self.train_until_kill()
        final = self.resume()
        self.test(final)
        bad = next((p for p in self.phases if not p.ok), None)
        return None if bad is None else f'{bad.name}: exit {bad.exit}'

    def report(self, failed: Optional[str]) -> None:
        """The per-step lines and the markdown table."""
        args = self.args
        self.list_kept()
        print()
        say('summary')
        for p in self.phases:
            say(f'  {p.name}: {fmt_time(p.wall_s)}, peak RSS {fmt_bytes(p.peak_rss)}, '
                f'exit {p.exit or "-"}' + (f', log {p.log}' if p.log else ''))
        last = {w.name: w for w in self.written}  # a file written again: its last write
        for w in self.written:
            say(f'  checkpoint {w.name}: {fmt_bytes(w.size)}, written by the {w.run} run'
                + (' (kept)' if w.name in self.kept and last[w.name] is w else ''))
        if self.kept:
            on_disk = sum(os.path.getsize(osp.join(self.work_dir, n)) for n in self.kept)
            say(f'  {len(self.written)} checkpoint(s) written, {len(self.kept)} kept, '
                f'{fmt_bytes(on_disk)} on disk')
        print()
        print(f'`{args.config}` ({args.arch}), T=1, K_a={args.K_a}, K_b={args.K_b}, '
              f'K_c={args.K_c} (iterations), batch 1, {args.workers} worker(s), '
              f'{args.threads or "default"} torch thread(s); '
              f'{machine_line()}:')
        print()
        print(summary_table(self.phases, self.written, self.kept))
        print()
        if failed is None:
            say('all steps passed')


def fmt_trials(work_dir: str) -> str:
    """The study's trials by state, e.g. '3 COMPLETE', or '0 trials'."""
    trials = study_trials(work_dir)
    return ', '.join(f'{n} {state}' for state, n in sorted(trials.items())) or '0 trials'


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.step:
        return run_step(args)
    os.makedirs(osp.join(args.out, 'logs'), exist_ok=True)
    check = Check(args, argv)
    say(f'{args.arch}: {ARCHES[args.arch].description}, {args.config}; out {args.out}')
    say(f'machine: {machine_line()}')
    try:
        failed = check.run()
    except CheckFailed as err:
        failed = str(err)
    except KeyboardInterrupt:
        failed = 'interrupted (Ctrl-C)'
    check.report(failed)
    if failed is not None:
        log = next((p.log for p in reversed(check.phases) if p.log and not p.ok), None)
        if log:
            print(log_tail(log), file=sys.stderr)
        print(f'FAILED: {failed}' + (f' (log {log})' if log else ''), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
