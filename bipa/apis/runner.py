"""Build an mmengine Runner for a config, pointed at a data root."""
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.runner import Runner

from ..utils import load_run_config

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


def build_runner(config: str, **overrides) -> Runner:
    """``Runner.from_cfg`` of :func:`load_config`'s config (same keywords)."""
    return Runner.from_cfg(load_config(config, **overrides))
