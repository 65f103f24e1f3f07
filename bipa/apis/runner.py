"""Build an mmengine Runner for a config, pointed at a data root."""
import os.path as osp
import uuid
from typing import Optional

from mmdet.registry import RUNNERS
from mmengine.config import Config
from mmengine.runner import Runner

from ..utils import guard_forked_children, load_run_config, setup_cuda_allocator, setup_launcher

SPLITS = ('train', 'val', 'test')


def use_data_root(cfg: Config, data_root: str) -> Config:
    """Point every dataloader's dataset, and the val/test evaluators, at
    ``data_root`` (in place): an evaluator's ``ann_file`` becomes ``data_root``
    joined with its split dataset's ``ann_file``."""
    root = data_root.rstrip('/') + '/'
    for split in SPLITS:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        loader.dataset.data_root = root
        evaluator = cfg.get(f'{split}_evaluator')
        if evaluator and 'ann_file' in evaluator:
            evaluator.ann_file = osp.join(root, loader.dataset.ann_file)
    return cfg


def load_config(config: str, *, work_dir: Optional[str] = None,
                data_root: Optional[str] = None, cfg_options: Optional[dict] = None,
                load_from: Optional[str] = None, resume: bool = False) -> Config:
    """A config file as ``tools/train.py`` reads it (``cfg_options`` merged,
    work dir set), pointed at ``data_root`` when given. ``resume`` continues
    from the latest checkpoint in the work dir when there is one."""
    cfg = load_run_config(config, cfg_options=cfg_options, work_dir=work_dir)
    if data_root is not None:
        use_data_root(cfg, data_root)
    if load_from is not None:
        cfg.load_from = load_from
    if resume:
        cfg.resume = True
    return cfg


def runner_from_cfg(cfg: Config) -> Runner:
    """The config's Runner (``runner_type`` if set, else mmengine's), built
    after the CUDA allocator is configured from ``env_cfg.cuda_alloc_conf``
    and the launcher is set up; the allocator setting is logged. The
    processes it forks (DataLoader workers) end with it
    (:func:`~bipa.utils.guard_forked_children`). Its visualizer is its own,
    writing to its log dir, whatever Runners the process built before."""
    alloc_conf = setup_cuda_allocator(cfg)
    setup_launcher(cfg)
    guard_forked_children()
    visualizer = cfg.get('visualizer')
    if isinstance(visualizer, dict) and 'name' not in visualizer:
        # a visualizer of its own: mmengine's instance manager hands a Runner the
        # visualizer of an earlier one of the same name (by default the experiment
        # name: config name and start time to the second), which writes to that
        # Runner's log dir
        visualizer['name'] = f'visualizer_{uuid.uuid4().hex}'
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.logger.info(f'CUDA caching allocator: PYTORCH_CUDA_ALLOC_CONF={alloc_conf}')
    return runner


def build_runner(config: str, **overrides) -> Runner:
    """:func:`runner_from_cfg` of :func:`load_config`'s config (same keywords)."""
    return runner_from_cfg(load_config(config, **overrides))
