"""The synthetic dataset generator (bipa.datasets.synthetic), in both media."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from bipa.datasets import SYNTHETIC_CLASSES
from bipa.datasets.synthetic import generate_synthetic_dataset, render_synthetic_image
from tests.conftest import load_tool

SPLITS = dict(train=4, val=2)
SIZE = (64, 64)


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    info = generate_synthetic_dataset(str(root), splits=SPLITS,
                                      image_size=SIZE, seed=0, progress=False)
    return root, info


def test_layout_and_summary(dataset):
    root, info = dataset
    assert info['classes'] == SYNTHETIC_CLASSES
    for split, n in SPLITS.items():
        s = info['splits'][split]
        assert s['num_images'] == n and s['img_prefix'] == f'{split}/'
        assert Path(s['ann_file']) == root / 'annotations' / f'{split}.json'
        assert len(list((root / split).glob('*.jpg'))) == n


def test_deterministic(dataset, tmp_path):
    root, _ = dataset
    generate_synthetic_dataset(str(tmp_path / 'same'), splits=SPLITS,
                               image_size=SIZE, seed=0, progress=False)
    same = _files(tmp_path / 'same')
    assert same == _files(root)  # byte-identical json and images
    generate_synthetic_dataset(str(tmp_path / 'other'), splits=SPLITS,
                               image_size=SIZE, seed=1, progress=False)
    other = _files(tmp_path / 'other')
    assert other.keys() == same.keys()
    assert other['annotations/train.json'] != same['annotations/train.json']
    assert other['train/000000.jpg'] != same['train/000000.jpg']


def test_image_independent_of_split_sizes(dataset, tmp_path):
    root, _ = dataset
    generate_synthetic_dataset(str(tmp_path), splits=dict(train=1),
                               image_size=SIZE, seed=0, progress=False)
    assert ((tmp_path / 'train' / '000000.jpg').read_bytes()
            == (root / 'train' / '000000.jpg').read_bytes())


@pytest.mark.parametrize('split', list(SPLITS))
def test_coco_annotations(dataset, split):
    root, _ = dataset
    coco = COCO(str(root / 'annotations' / f'{split}.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(
        SYNTHETIC_CLASSES)
    assert coco.getCatIds() == list(range(1, len(SYNTHETIC_CLASSES) + 1))
    img_ids = coco.getImgIds()
    assert len(img_ids) == SPLITS[split] == len(set(img_ids))
    ann_ids = coco.getAnnIds()
    assert len(ann_ids) == len(set(ann_ids))
    for img in coco.loadImgs(img_ids):
        assert (img['height'], img['width']) == SIZE
        assert '/' not in img['file_name']
        im = cv2.imread(str(root / split / img['file_name']))
        assert im is not None and im.shape == (*SIZE, 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img['id']]))
        assert len(anns) >= 1
        union = np.zeros(SIZE, np.int32)
        for ann in anns:
            assert ann['category_id'] in coco.getCatIds()
            assert ann['iscrowd'] == 0
            m = coco.annToMask(ann)
            assert m.shape == SIZE and m.sum() > 0
            assert ann['area'] == int(m.sum())
            x, y, w, h = ann['bbox']
            assert all(isinstance(v, int) for v in (x, y, w, h))
            ys, xs = np.nonzero(m)
            # tight box: the mask lies inside and touches every side
            assert xs.min() == x and xs.max() == x + w - 1
            assert ys.min() == y and ys.max() == y + h - 1
            assert list(mask_utils.toBbox(ann['segmentation'])) == [
                x, y, w, h]
            union += m
        assert union.max() == 1  # visible masks never overlap


def test_underwater_colour_cast(dataset):
    root, _ = dataset
    means = np.mean([cv2.imread(str(p)).reshape(-1, 3).mean(0)
                     for p in sorted(root.rglob('*.jpg'))], 0)
    b, g, r = means  # OpenCV reads BGR
    assert r < g and r < b


def test_render_synthetic_image():
    out = render_synthetic_image(np.random.default_rng(3), (48, 80))
    assert out['image'].shape == (48, 80, 3)
    assert out['image'].dtype == np.uint8
    assert out['depth'].shape == (48, 80)
    assert len(out['masks']) == len(out['labels']) >= 1
    assert all(m.shape == (48, 80) and m.any() for m in out['masks'])
    assert all(0 <= lab < len(SYNTHETIC_CLASSES) for lab in out['labels'])
    beta = out['water']['beta']
    assert beta[0] > beta[1] > beta[2]  # red attenuates most, blue least


@pytest.fixture(scope='module')
def in_air(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp('in_air')
    generate_synthetic_dataset(str(root), splits=SPLITS, image_size=SIZE, seed=0,
                               medium='in_air', progress=False)
    return root


def test_in_air_is_deterministic(in_air, tmp_path):
    generate_synthetic_dataset(str(tmp_path), splits=SPLITS, image_size=SIZE, seed=0,
                               medium='in_air', progress=False)
    assert _files(tmp_path) == _files(in_air)


@pytest.mark.parametrize('split', list(SPLITS))
def test_media_share_the_scenes(dataset, in_air, split):
    """Same seed: the same masks, boxes and labels; other pixels."""
    water = json.loads((dataset[0] / 'annotations' / f'{split}.json').read_text())
    air = json.loads((in_air / 'annotations' / f'{split}.json').read_text())
    assert (water['info']['medium'], air['info']['medium']) == ('underwater', 'in_air')
    water.pop('info'), air.pop('info')
    assert water == air
    for img in air['images']:
        a = cv2.imread(str(in_air / split / img['file_name'])).astype(np.float32)
        w = cv2.imread(str(dataset[0] / split / img['file_name'])).astype(np.float32)
        assert np.abs(a - w).mean() > 10


def test_in_air_has_no_water():
    """Daylight: no colour cast (red is not suppressed) and more contrast
    between objects and background than the same scenes under water."""
    contrast = {}
    for medium in ('underwater', 'in_air'):
        reds, diffs = [], []
        for i in range(8):
            out = render_synthetic_image(np.random.default_rng(i), (64, 96), 0.2, medium=medium)
            img = out['image'].astype(np.float32)
            reds.append(img[..., 0].mean() / img[..., 1:].mean())
            fg = np.any(out['masks'], 0)
            if (~fg).any():
                diffs.append(np.abs(img[fg].mean(0) - img[~fg].mean(0)).sum())
        contrast[medium] = np.mean(diffs)
        if medium == 'in_air':
            assert np.mean(reds) > 0.8
        else:
            assert np.mean(reds) < 0.6
    assert contrast['in_air'] > 1.5 * contrast['underwater']


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate_synthetic_dataset(str(tmp_path), splits={'a/b': 1},
                                   image_size=SIZE, progress=False)
    with pytest.raises(ValueError):
        generate_synthetic_dataset(str(tmp_path), splits=dict(train=1),
                                   image_size=SIZE, seed=-1, progress=False)
    with pytest.raises(ValueError, match='medium'):
        generate_synthetic_dataset(str(tmp_path), splits=dict(train=1),
                                   image_size=SIZE, medium='space', progress=False)


def test_cli(tmp_path, capsys):
    cli = load_tool('dataset_converters/generate_synthetic')
    out = tmp_path / 'cli'
    info = cli.main(['--out', str(out), '--train', '2', '--val', '1',
                     '--test', '0', '--size', '40', '56', '--seed', '5',
                     '--medium', 'in_air', '--min-object-size', '0.3', '--no-progress'])
    printed = capsys.readouterr().out
    assert str(out) in printed and 'train: 2 images' in printed
    assert info['seed'] == 5 and info['image_size'] == (40, 56)
    assert info['medium'] == 'in_air' and 'synthetic in_air dataset' in printed
    train = json.loads((out / 'annotations' / 'train.json').read_text())
    assert len(train['images']) == 2
    assert train['images'][0]['height'] == 40
    assert train['images'][0]['width'] == 56
    assert len(list((out / 'val').glob('*.jpg'))) == 1
    assert json.loads(
        (out / 'annotations' / 'test.json').read_text())['images'] == []
