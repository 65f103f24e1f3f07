"""Shared fixtures and helpers: a tiny BiPA config, mmdet-style demo inputs,
the synthetic dataset, the tiny bilevel run config, and the tools in-process."""
import copy
import functools
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import mmengine.config.config as mmengine_config
import mmengine.dataset.base_dataset as mmengine_base_dataset
import pytest
import torch
from mmdet.models.task_modules.assigners import AssignResult
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import bipa  # noqa: F401  (registers the modules)
from bipa.apis import use_data_root
from bipa.datasets.synthetic import generate_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL_CFG = ROOT / 'configs' / '_base_' / 'models' / 'bipa_vit-tiny.py'
DEMO_CFG = ROOT / 'configs' / 'bipa_demo_synthetic.py'

register_all_modules(init_default_scope=True)


def init_checkpoint(cfg: Config, tmp_path: Path) -> Path:
    """``tmp_path/run/iter_4.pth``: the initial weights of ``cfg``'s model
    (built in ``tmp_path/build``), e.g. a checkpoint for the analysis tools."""
    from mmengine.runner import Runner
    cfg.work_dir = str(tmp_path / 'build')
    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()
    (tmp_path / 'run').mkdir()
    checkpoint = tmp_path / 'run' / 'iter_4.pth'
    torch.save(dict(state_dict=runner.model.state_dict()), checkpoint)
    return checkpoint


def load_tool(path: str):
    """A script under ``tools/`` (``'analysis/benchmark'``) as a module:
    tools/ is not a package, tests call the scripts' functions in-process."""
    file = ROOT / 'tools' / f'{path}.py'
    spec = importlib.util.spec_from_file_location('bipa_tools_' + path.replace('/', '_'), file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def standin(src: Path, dst_img: Path, dst_json: Path, classes, rename=None):
    """Copy the synthetic train split into another dataset's layout, with
    that dataset's categories (ids 1.. in ``classes`` order)."""
    coco = json.loads((src / 'annotations' / 'train.json').read_text())
    old = {c['id']: c['name'] for c in coco['categories']}
    new = {name: i + 1 for i, name in enumerate(classes)}
    for ann in coco['annotations']:
        name = old[ann['category_id']]
        ann['category_id'] = new[rename or name]
        ann['orig_name'] = name
    coco['categories'] = [dict(id=i, name=n) for n, i in new.items()]
    dst_json.parent.mkdir(parents=True, exist_ok=True)
    dst_json.write_text(json.dumps(coco))
    shutil.copytree(src / 'train', dst_img)
    return coco


def sampling_result(gt_bboxes, gt_inds):
    """mmdet's SamplingResult, as the RoI head's assigner and sampler hand it to
    the mask branch, of priors assigned to the GT ``gt_inds`` (1-based; 0: a
    negative); each prior is its GT's box."""
    gt_inds = torch.as_tensor(gt_inds)
    priors = gt_bboxes[(gt_inds - 1).clamp(min=0)]
    assign = AssignResult(len(gt_bboxes), gt_inds, torch.ones(len(gt_inds)),
                          labels=torch.zeros_like(gt_inds))
    return SamplingResult(torch.nonzero(gt_inds > 0).squeeze(1),
                          torch.nonzero(gt_inds == 0).squeeze(1), priors, gt_bboxes, assign,
                          gt_flags=priors.new_zeros(len(priors), dtype=torch.uint8))


class Killed(BaseException):
    """Stands for the process being killed (no ``except Exception`` catches it)."""


class HalfWrittenFile:
    """A file object whose first ``write`` writes half of its data, flushes and
    is then killed: a process killed in the middle of writing a file."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        raise Killed


def run_tool(tool, *args):
    """A tool's ``main()`` as its command line ``tool.py ARGS`` would call it."""
    with mock.patch.object(sys, 'argv', [f'{tool.__name__}.py', *map(str, args)]):
        return tool.main()


@functools.lru_cache(maxsize=1)
def _demo_cfg() -> Config:
    return Config.fromfile(str(DEMO_CFG))


def tiny_bilevel_cfg(data_root) -> Config:
    """The demo config on the synthetic data at ``data_root``, with a very short
    bilevel schedule (T=2 rounds of K_a=2 iterations and K_b=3 trials, K_c=2
    fine-tuning iterations) and no SAM checkpoint."""
    cfg = use_data_root(copy.deepcopy(_demo_cfg()), str(data_root))
    cfg.merge_from_dict({
        'train_dataloader.batch_size': 2,
        'model.data_preprocessor.pad_size_divisor': 64,
        'model.sam_checkpoint': None,  # the loop does not need SAM's weights
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1000,
        'default_hooks.visualization.draw': False,
        'train_cfg.holdout': dict(_delete_=True, count=3, seed=0),
        'train_cfg.search.batch_size': 2,
        # 64x64 images: fewer proposals and RoIs than the demo's 128 px
        'model.train_cfg.rpn_proposal.nms_pre': 100,
        'model.train_cfg.rpn_proposal.max_per_img': 50,
        'model.train_cfg.rcnn.sampler.num': 16,
        'model.test_cfg.rpn.nms_pre': 100,
        'model.test_cfg.rpn.max_per_img': 50,
    })
    cfg.train_cfg.update(T=2, K_a=2, K_b=3, K_c=2, unit='iter')
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    return cfg


def event_scalars(log_dir: str) -> dict:
    """``{tag: [(step, value), ...]}`` of the one TensorBoard event file under
    ``log_dir``."""
    files = list(Path(log_dir).glob('vis_data/events.out.tfevents.*'))
    assert len(files) == 1, files
    events = EventAccumulator(str(files[0]), size_guidance={'scalars': 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()['scalars']}


# tiny models: one thread is faster than two and immune to a busy machine
torch.set_num_threads(1)

# Two mmengine costs that dominate a tiny Runner and change no result: every
# Runner formats its config with yapf 3 times (log, dump, visualizer: 0.3 s
# each), and every dataset runs a full gc.collect() when it serialises its
# annotations (0.5 s in a test process). Tests keep the text unformatted and
# skip that collection; subprocess tests and the tools run them as users do.
mmengine_config.FormatCode = lambda text, **kwargs: (text, False)
mmengine_base_dataset.gc = SimpleNamespace(collect=lambda *args: 0)


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Every test builds in mmdet's registry scope, whatever a previous test's
    Runner left as the default scope."""
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='session')
def tiny_model_cfg():
    """The tiny BiPA model config (a fresh copy per use)."""
    base = Config.fromfile(str(TINY_MODEL_CFG))

    def make(**overrides):
        cfg = copy.deepcopy(base)
        cfg.merge_from_dict({f'model.{k}': v for k, v in overrides.items()})
        return cfg.model
    return make


@pytest.fixture
def demo_batch():
    """Two images (one non-square) with 3 and 2 instances, boxes and masks."""
    def make(shapes=((3, 128, 128), (3, 96, 128)), num_items=(3, 2), seed=0):
        torch.manual_seed(seed)
        return demo_mm_inputs(len(shapes), [list(s) for s in shapes],
                              num_items=list(num_items), with_mask=True)
    return make


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """The synthetic dataset most tests share: 64x64 images, train/val/test
    splits of 10/2/2 images."""
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_dataset(root, splits=dict(train=10, val=2, test=2), image_size=(64, 64),
                               seed=1, progress=False)
    return root
