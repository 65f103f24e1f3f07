import copy

import pytest
from mmengine.config import Config

from bipa.datasets import generate_synthetic_dataset
from tests.conftest import ROOT

DEMO_CFG = ROOT / 'configs' / 'bipa_demo_synthetic.py'


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_dataset(root, splits=dict(train=10, val=2, test=2), image_size=(64, 64),
                               seed=1, progress=False)
    return root


@pytest.fixture
def loop_cfg(tiny_data, tmp_path):
    """The demo config on the tiny data, with a very short bilevel schedule and
    no SAM checkpoint."""
    base = Config.fromfile(str(DEMO_CFG))

    def make(work_dir=None, **train_cfg):
        cfg = copy.deepcopy(base)
        root = str(tiny_data) + '/'
        cfg.merge_from_dict({
            'work_dir': str(work_dir or tmp_path / 'work'),
            'train_dataloader.batch_size': 2,
            'train_dataloader.dataset.data_root': root,
            'model.data_preprocessor.pad_size_divisor': 64,
            'model.sam_checkpoint': None,  # the loop does not need SAM's weights
            'default_hooks.logger.interval': 1,
            'default_hooks.checkpoint.interval': 1000,
            'default_hooks.visualization.draw': False,
            'train_cfg.holdout': dict(_delete_=True, count=3, seed=0),
            'train_cfg.search.batch_size': 2,
            'log_level': 'WARNING',
        })
        cfg.train_cfg.update(T=2, K_a=2, K_b=3, K_c=2, unit='iter')
        cfg.train_cfg.update(train_cfg)
        for split in ('val', 'test'):
            cfg[f'{split}_dataloader'].dataset.data_root = root
            cfg[f'{split}_evaluator'].ann_file = root + f'annotations/{split}.json'
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        return cfg
    return make
