import copy
import functools
import json
import shutil

import pytest
from mmengine.config import Config

from bipa.datasets.synthetic import generate_synthetic_dataset
from tests.conftest import ROOT

DEMO_CFG = ROOT / 'configs' / 'bipa_demo_synthetic.py'


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_dataset(root, splits=dict(train=10, val=2, test=2), image_size=(64, 64),
                               seed=1, progress=False)
    return root


@functools.lru_cache(maxsize=1)
def _demo_cfg() -> Config:
    return Config.fromfile(str(DEMO_CFG))


def make_loop_cfg(data_root, work_dir, **train_cfg):
    """The demo config on the tiny data, with a very short bilevel schedule and
    no SAM checkpoint."""
    cfg = copy.deepcopy(_demo_cfg())
    root = str(data_root) + '/'
    cfg.merge_from_dict({
        'work_dir': str(work_dir),
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
    # a rate that changes in both phases, so that resuming must restore it
    cfg.param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[3],
                                gamma=0.5)]
    cfg.train_cfg.finetune = dict(lr=1e-3, param_scheduler=[
        dict(type='MultiStepLR', by_epoch=False, milestones=[1], gamma=0.5)])
    cfg.train_cfg.update(train_cfg)
    for split in ('val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = root
        cfg[f'{split}_evaluator'].ann_file = root + f'annotations/{split}.json'
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    return cfg


@pytest.fixture
def loop_cfg(tiny_data, tmp_path):
    def make(work_dir=None, **train_cfg):
        return make_loop_cfg(tiny_data, work_dir or tmp_path / 'work', **train_cfg)
    return make


@pytest.fixture(scope='module')
def reference_run(tiny_data, tmp_path_factory):
    """One uninterrupted run of the default ``loop_cfg()``, shared by the
    resume tests of a module."""
    from mmengine.runner import Runner
    runner = Runner.from_cfg(make_loop_cfg(tiny_data, tmp_path_factory.mktemp('ref')))
    runner.train()
    return runner


@pytest.fixture(scope='session')
def mixed_size_data(tmp_path_factory):
    """A training split of 96x64 (W x H) and 200x150 images: the demo pipeline
    resizes them up and down to 128 on the longer side, so GT at the original
    scale and GT at the model's input scale differ."""
    root = tmp_path_factory.mktemp('mixed')
    images, annotations, categories = [], [], None
    (root / 'train').mkdir()
    for part, size in (('a', (64, 96)), ('b', (150, 200))):
        src = root / f'src_{part}'
        generate_synthetic_dataset(src, splits=dict(train=4), image_size=size, seed=2,
                                   progress=False)
        coco = json.loads((src / 'annotations' / 'train.json').read_text())
        categories = coco['categories']
        id_map = {}
        for img in coco['images']:
            id_map[img['id']] = len(images) + 1
            name = f'{part}_{img["file_name"]}'
            shutil.copy(src / 'train' / img['file_name'], root / 'train' / name)
            images.append(dict(img, id=id_map[img['id']], file_name=name))
        for ann in coco['annotations']:
            annotations.append(dict(ann, id=len(annotations) + 1,
                                    image_id=id_map[ann['image_id']]))
    (root / 'annotations').mkdir()
    (root / 'annotations' / 'train.json').write_text(json.dumps(
        dict(images=images, annotations=annotations, categories=categories)))
    return root
