import os.path as osp
from typing import Optional

from mmengine.config import Config


def load_run_config(config: str, *, cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None, launcher: str = 'none') -> Config:
    """A config as tools/train.py and tools/test.py use it: ``--cfg-options``
    merged, the launcher set, and the work dir from ``--work-dir``, the config,
    or ``work_dirs/<config name>``."""
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg
