"""The registered underwater COCO datasets build and load their layouts."""
import json

import pytest
from mmdet.registry import DATASETS
from mmengine.registry import init_default_scope

from bipa.datasets import (
    SYNTHETIC_CLASSES,
    SyntheticUnderwaterDataset,
    UIISDataset,
    USIS10KDataset,
    USIS10KForegroundDataset,
)
from tests.conftest import standin

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs'),
]
UIIS = UIISDataset.METAINFO['classes']
USIS = USIS10KDataset.METAINFO['classes']


def _check(cfg, coco, classes, rename=None):
    init_default_scope('mmdet')
    ds = DATASETS.build(dict(cfg, pipeline=PIPELINE))
    assert ds.metainfo['classes'] == classes
    assert len(ds.metainfo['palette']) == len(classes)
    assert len(set(ds.metainfo['palette'])) == len(classes)
    assert len(ds) == len(coco['images'])
    names = iter(a['orig_name'] for a in coco['annotations'])
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        for inst in info['instances']:  # label i is classes[i]
            assert classes[inst['bbox_label']] == (rename or next(names))
        item = ds[i]
        gt = item['data_samples'].gt_instances
        labels = gt.labels.numpy()
        assert len(labels) >= 1
        assert ((labels >= 0) & (labels < len(classes))).all()
        assert gt.masks.masks.shape == (len(labels), 64, 64)
        assert gt.masks.masks.reshape(len(labels), -1).any(1).all()
        assert item['inputs'].shape == (3, 64, 64)
    return ds


def test_uiis(tiny_data, tmp_path):
    root = tmp_path / 'data' / 'UIIS' / 'UDW'
    coco = standin(tiny_data, root / 'train',
                    root / 'annotations' / 'train.json', UIIS)
    _check(dict(type='UIISDataset', data_root=str(root),
                ann_file='annotations/train.json',
                data_prefix=dict(img='train/')), coco, UIIS)


def test_usis10k(tiny_data, tmp_path):
    root = tmp_path / 'data' / 'USIS10K'
    coco = standin(
        tiny_data, root / 'train', root / 'multi_class_annotations' /
        'multi_class_train_annotations.json', USIS)
    _check(dict(type='USIS10KDataset', data_root=str(root),
                ann_file='multi_class_annotations/'
                'multi_class_train_annotations.json',
                data_prefix=dict(img='train/')), coco, USIS)


def test_usis10k_foreground(tiny_data, tmp_path):
    root = tmp_path / 'data' / 'USIS10K'
    coco = standin(
        tiny_data, root / 'train', root / 'foreground_annotations' /
        'foreground_train_annotations.json', ('foreground', ),
        rename='foreground')
    _check(dict(type='USIS10KForegroundDataset', data_root=str(root),
                ann_file='foreground_annotations/'
                'foreground_train_annotations.json',
                data_prefix=dict(img='train/')), coco, ('foreground', ),
           rename='foreground')


def test_synthetic(tiny_data):
    coco = json.loads((tiny_data / 'annotations' / 'train.json').read_text())
    names = {c['id']: c['name'] for c in coco['categories']}
    for ann in coco['annotations']:
        ann['orig_name'] = names[ann['category_id']]
    ds = _check(dict(type='SyntheticUnderwaterDataset',
                     data_root=str(tiny_data),
                     ann_file='annotations/train.json',
                     data_prefix=dict(img='train/')), coco,
                SYNTHETIC_CLASSES)
    assert isinstance(ds, SyntheticUnderwaterDataset)


def test_metainfo_classes():
    assert UIIS == ('fish', 'reefs', 'aquatic plants', 'wrecks/ruins',
                    'human divers', 'robots', 'sea-floor')
    assert USIS == ('wrecks/ruins', 'fish', 'reefs', 'aquatic plants',
                    'human divers', 'robots', 'sea-floor')
    assert USIS10KForegroundDataset.METAINFO['classes'] == ('foreground', )
    assert SyntheticUnderwaterDataset.METAINFO['classes'] == SYNTHETIC_CLASSES
    for cls in (UIISDataset, USIS10KDataset, USIS10KForegroundDataset,
                SyntheticUnderwaterDataset):
        palette = cls.METAINFO['palette']
        assert len(palette) == len(cls.METAINFO['classes'])
        assert all(len(c) == 3 and all(0 <= v <= 255 for v in c)
                   for c in palette)


def test_category_order_mismatch_warns(tiny_data, tmp_path):
    root = tmp_path / 'UDW'
    standin(tiny_data, root / 'train', root / 'annotations' / 'train.json',
             tuple(reversed(UIIS)))
    init_default_scope('mmdet')
    with pytest.warns(UserWarning, match='differs from the classes'):
        DATASETS.build(dict(type='UIISDataset', data_root=str(root),
                            ann_file='annotations/train.json',
                            data_prefix=dict(img='train/'), pipeline=[]))
