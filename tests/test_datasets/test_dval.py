"""SearchSplit: D_tr and D_val of the prompt search resolved from a config,
and ``splits.json`` with their image ids and the seeds."""
import copy
import json

import pytest
from mmdet.registry import DATASETS

from bipa.datasets import SearchSplit
from tests.conftest import tiny_bilevel_cfg


@pytest.fixture
def cfg(tiny_data):
    """The tiny bilevel config (``randomness.seed=0``, the demo's)."""
    return tiny_bilevel_cfg(tiny_data)


def image_ids(dataset) -> set:
    return {dataset.get_data_info(i)['img_id'] for i in range(len(dataset))}


def resolve(cfg, holdout=None, val_split=None, pipeline=None):
    return SearchSplit.from_cfg(cfg, cfg.train_dataloader, holdout=holdout,
                                val_split=val_split, pipeline=pipeline)


def test_holdout_splits_the_training_set(cfg, tmp_path):
    split = resolve(cfg, holdout=dict(count=3, seed=5))
    train_cfg = split.train_dataloader['dataset']
    assert (train_cfg['type'], train_cfg['part'], train_cfg['seed']) == ('HoldoutSplit',
                                                                         'train', 5)
    assert split.val_dataset_cfg['part'] == 'holdout'
    assert split.val_dataset_cfg['dataset']['pipeline'] == split.val_pipeline
    types = [t['type'] for t in split.val_pipeline]
    assert types.index('LoadAnnotations') < types.index('Resize')  # GT at the input scale
    assert 'val_dataloader' in split.source
    train, val = DATASETS.build(train_cfg), DATASETS.build(split.val_dataset_cfg)
    assert len(val) == 3 and not image_ids(train) & image_ids(val)

    path = tmp_path / 'splits.json'
    lines = split.write(str(path), train, val)
    splits = json.loads(path.read_text())
    assert splits['seeds'] == dict(run=0, holdout=5)
    assert set(splits['D_val']['image_ids']) == image_ids(val)
    assert len(splits['D_tr']['image_ids']) == 7
    assert 'pipeline' not in splits['D_tr']['dataset']['dataset']
    assert 'seeds: run=0, holdout=5' in lines and lines[-1] == f'image ids of both: {path}'


def test_holdout_without_a_seed_uses_seed_0(cfg):
    cfg.randomness = dict(seed=None)
    assert resolve(cfg, holdout=dict(fraction=0.1)).seeds == dict(run=None, holdout=0)


def test_val_split_reads_that_dataloader(cfg, tmp_path):
    cfg.val_dataloader = copy.deepcopy(cfg.test_dataloader)
    cfg.val_dataloader.dataset.ann_file = 'annotations/val.json'
    cfg.randomness = dict(seed=3)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackDetInputs')]
    split = resolve(cfg, val_split='val_dataloader', pipeline=pipeline)
    assert split.train_dataloader == cfg.train_dataloader  # all of the training set
    assert split.val_dataset_cfg['ann_file'] == 'annotations/val.json'
    assert split.val_pipeline == split.val_dataset_cfg['pipeline'] == pipeline
    assert split.source == 'D_val (pipeline train_cfg.search.pipeline)'
    assert split.seeds == dict(run=3, holdout=None)
    path = tmp_path / 'splits.json'
    split.write(str(path), DATASETS.build(split.train_dataloader['dataset']),
                DATASETS.build(split.val_dataset_cfg))
    assert json.loads(path.read_text())['seeds'] == dict(run=3, holdout=None)


def test_no_dval(cfg, tmp_path):
    built = object()  # a built DataLoader is taken as it is
    split = SearchSplit.from_cfg(cfg, built, holdout=dict(count=3), val_split=None,
                                 pipeline=None)
    assert split.train_dataloader is built and split.val_dataset_cfg is None
    split = resolve(cfg)
    assert split.train_dataloader is cfg.train_dataloader and split.val_dataset_cfg is None
    assert split.seeds == dict(run=0, holdout=None)
    path = tmp_path / 'splits.json'
    lines = split.write(str(path), DATASETS.build(cfg.train_dataloader.dataset))
    assert 'D_val: none' in lines and 'D_val' not in json.loads(path.read_text())


def test_val_split_must_name_a_dataloader_and_never_the_test_split(cfg):
    with pytest.raises(ValueError, match=r"train_cfg\.val_split='nope' must name a dataloader"):
        resolve(cfg, val_split='nope')
    with pytest.raises(ValueError, match='that is the test split'):
        resolve(cfg, val_split='test_dataloader')
