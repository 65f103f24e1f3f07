"""Bad annotation files and images give one clear message naming the file."""
import glob
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config

from bipa.apis import use_data_root
from bipa.datasets import SYNTHETIC_CLASSES, AnnotationError, ImageReadError
from tests.conftest import DEMO_CFG, load_tool, run_tool


@pytest.fixture
def data(tiny_data, tmp_path):
    """A copy of the shared data's training split, to break."""
    root = tmp_path / 'data'
    shutil.copytree(tiny_data / 'train', root / 'train')
    shutil.copytree(tiny_data / 'annotations', root / 'annotations')
    return root


def num_images(root):
    return len(json.loads((root / 'annotations' / 'train.json').read_text())['images'])


def build(root, pipeline=(), ann='annotations/train.json', test_mode=False, **kwargs):
    cfg = dict(type='SyntheticUnderwaterDataset', data_root=str(root), ann_file=ann,
               data_prefix=dict(img='train/'), test_mode=test_mode, pipeline=list(pipeline),
               filter_cfg=dict(filter_empty_gt=True), **kwargs)
    dataset = DATASETS.build(cfg)
    dataset.full_init()
    return dataset


def edit(root, fn):
    path = root / 'annotations' / 'train.json'
    coco = json.loads(path.read_text())
    fn(coco)
    path.write_text(json.dumps(coco))
    return coco


def test_truncated_json_names_the_file(data):
    path = data / 'annotations' / 'train.json'
    path.write_text(path.read_text()[:200])
    with pytest.raises(AnnotationError, match=r'train\.json: not valid JSON .*truncated'):
        build(data)


def test_json_without_annotations(data):
    edit(data, lambda c: c.pop('annotations'))
    with pytest.raises(AnnotationError, match="lacks the list 'annotations'"):
        build(data)


def test_unknown_image_and_category(data):
    def corrupt(coco):
        coco['annotations'][0]['image_id'] = 999
        coco['annotations'][1]['category_id'] = 42
    edit(data, corrupt)
    with pytest.raises(AnnotationError) as err:
        build(data)
    msg = str(err.value)
    assert 'train.json' in msg and 'unknown image ids' in msg and 'unknown category ids' in msg


def test_defective_instances_are_skipped_and_counted(data, monkeypatch):
    import bipa.datasets.underwater as underwater
    logged = []
    monkeypatch.setattr(underwater, 'print_log', lambda msg, **kw: logged.append(msg))

    def corrupt(coco):
        anns = coco['annotations']
        anns[0]['bbox'] = [500, 500, 10, 10]  # outside the 64x64 image
        anns[1]['bbox'][2] = 0.5  # degenerate
        anns[2]['segmentation'] = []  # empty mask
    coco = edit(data, corrupt)
    dataset = build(data)
    kept = sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset)))
    assert kept <= len(coco['annotations']) - 3
    assert all('mask' in inst for i in range(len(dataset))
               for inst in dataset.get_data_info(i)['instances'])
    assert len(logged) == 1 and 'train.json: skipped 3 instance(s)' in logged[0]
    for why in ('1 box outside the image', '1 degenerate box or zero area', '1 empty mask'):
        assert why in logged[0]


def test_annotations_of_categories_that_are_not_classes(data, monkeypatch):
    """mmdet and CocoMetric leave them out without a word."""
    import bipa.datasets.underwater as underwater
    logged = []
    monkeypatch.setattr(underwater, 'print_log', lambda msg, **kw: logged.append(msg))

    def add_category(coco):
        coco['categories'].append(dict(id=99, name='jellyfish'))
        for ann in coco['annotations'][:2]:
            ann['category_id'] = 99
    coco = edit(data, add_category)
    with pytest.raises(AnnotationError, match=r"train\.json: 2 annotation\(s\) of categories "
                       r"that are not classes of SyntheticUnderwaterDataset: 'jellyfish' \(2\); "
                       r'.*ignore_extra_categories=True'):
        build(data, test_mode=True)
    assert logged == []

    dataset = build(data, test_mode=True, ignore_extra_categories=True)
    kept = sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset)))
    assert kept == len(coco['annotations']) - 2
    assert logged == [f'{data / "annotations" / "train.json"}: dropped 2 annotation(s) of '
                      'categories that are not classes (ignore_extra_categories=True): '
                      "'jellyfish' (2)"]


def test_test_tool_warns_once_of_dropped_categories(tiny_data, tmp_path, monkeypatch):
    """tools/test.py on a split with annotations of a category that is not a
    class, dropped with ``ignore_extra_categories=True``: one warning, in the
    run's log, as docs/reliability.md says (a dataset build warns once; mmengine hides a
    repeated warning only within one logger)."""
    import bipa.datasets.underwater as underwater

    root = tmp_path / 'data'
    shutil.copytree(tiny_data, root)
    path = root / 'annotations' / 'test.json'
    coco = json.loads(path.read_text())
    coco['categories'].append(dict(id=99, name='jellyfish'))
    coco['annotations'][0]['category_id'] = 99
    path.write_text(json.dumps(coco))
    cfg = use_data_root(Config.fromfile(str(DEMO_CFG)), str(root))
    cfg.test_dataloader.dataset.ignore_extra_categories = True
    cfg.dump(str(tmp_path / 'cfg.py'))
    checkpoint = tmp_path / 'random.pth'
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), checkpoint)

    logged, print_log = [], underwater.print_log
    monkeypatch.setattr(underwater, 'print_log',
                        lambda msg, **kw: (logged.append(msg), print_log(msg, **kw)))
    monkeypatch.delenv('PYTORCH_CUDA_ALLOC_CONF', raising=False)  # the tool sets it
    run_tool(load_tool('test'), tmp_path / 'cfg.py', checkpoint, '--work-dir', tmp_path / 'work')
    warning = (f'{path}: dropped 1 annotation(s) of categories that are not classes '
               "(ignore_extra_categories=True): 'jellyfish' (1)")
    assert logged.count(warning) == 1, logged
    log, = glob.glob(str(tmp_path / 'work' / '*' / '*.log'))
    assert open(log).read().count(warning) == 1


def test_images_without_instances_are_filtered_in_training_only(data):
    edit(data, lambda c: c.update(annotations=[a for a in c['annotations'] if a['image_id'] != 1]))
    dataset = build(data)
    assert len(dataset) == num_images(data) - 1
    assert 1 not in [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
    assert len(build(data, test_mode=True)) == num_images(data)


LOAD = [dict(type='CheckedLoadImageFromFile')]


def test_missing_image(data):
    (data / 'train' / '000000.jpg').unlink()
    dataset = build(data, LOAD, test_mode=True)
    with pytest.raises(FileNotFoundError, match=r'image file not found: .*000000\.jpg'):
        dataset[0]


def test_truncated_jpeg(data):
    path = data / 'train' / '000000.jpg'
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(ImageReadError, match=r'000000\.jpg: truncated JPEG'):
        build(data, LOAD, test_mode=True)[0]


def test_non_image_bytes(data):
    (data / 'train' / '000000.jpg').write_bytes(b'<html>not an image</html>')
    with pytest.raises(ImageReadError, match=r'000000\.jpg: not a readable image'):
        build(data, LOAD, test_mode=True)[0]


def test_16_bit_image_warns_once(data, monkeypatch):
    """OpenCV reads 16-bit samples as their high byte: 12-bit data loads nearly
    black."""
    import bipa.datasets.transforms.loading as loading
    logged = []
    monkeypatch.setattr(loading, 'print_log', lambda msg, **kw: logged.append(msg))
    img = cv2.imread(str(data / 'train' / '000000.jpg')).astype(np.uint16) * 16  # 12 bits
    cv2.imwrite(str(data / 'train' / '000000.png'), img)
    edit(data, lambda c: c['images'][0].update(file_name='000000.png'))
    dataset = build(data, LOAD, test_mode=True)
    for _ in range(2):  # two epochs
        assert dataset[0]['img'].max() <= 15
        dataset[1]  # an 8-bit JPEG: no word
    assert len(logged) == 1, logged
    assert logged[0].startswith(f'{data / "train" / "000000.png"}: stored as uint16 with values')
    assert f'..{img.max()}, loaded as uint8 with values ' in logged[0]
    assert f'..{img.max() >> 8} of 255; convert it to 8-bit' in logged[0]


def test_good_images_load(data):
    item = build(data, LOAD, test_mode=True)[0]
    assert isinstance(item['img'], np.ndarray) and item['img'].shape == (64, 64, 3)
    assert tuple(build(data).metainfo['classes']) == SYNTHETIC_CLASSES


def _same_id_on_two_files(coco):
    coco['images'][1]['id'] = coco['images'][0]['id']


def _same_file_under_two_ids(coco):
    coco['images'][1]['file_name'] = coco['images'][0]['file_name']


def _entry_listed_twice(coco):
    coco['images'].append(dict(coco['images'][2]))


def _annotation_id_twice(coco):
    coco['annotations'][1]['id'] = coco['annotations'][0]['id']


@pytest.mark.parametrize('fault, match', [
    (_same_id_on_two_files, r'train\.json: .*image ids given to more than one image: 1 '
                            r'\(000000\.jpg, 000001\.jpg\)'),
    (_same_file_under_two_ids, r'train\.json: files listed under more than one image id: '
                               r'000000\.jpg \(ids 1, 2\)'),
    (_entry_listed_twice, r'train\.json: image entries listed twice: ids 3'),
    (_annotation_id_twice, r'train\.json: annotation ids used more than once: 1'),
])
def test_duplicates_are_refused(data, fault, match):
    """pycocotools keeps one of two entries with the same id silently."""
    edit(data, fault)
    with pytest.raises(AnnotationError, match=match):
        build(data)


def test_no_image_left_after_filtering(data):
    def drop_annotations(coco):
        coco['annotations'] = []
    edit(data, drop_annotations)
    with pytest.raises(AnnotationError, match=r"train\.json: no image left for training after "
                                              r"filter_cfg=\{'filter_empty_gt': True\}"):
        build(data)
    assert len(build(data, test_mode=True)) == num_images(data)  # test mode does not filter
