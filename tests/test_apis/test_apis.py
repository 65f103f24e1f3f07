"""bipa.apis: what the tools share."""
import os

import numpy as np
import pytest
from mmengine.config import Config

from bipa.apis import (
    build_runner,
    check_same_scenes,
    draw_instances,
    format_domain_gap,
    measure_domain_gap,
    use_data_root,
)
from bipa.datasets import AnnotationError
from bipa.datasets.synthetic import generate_synthetic_dataset
from bipa.datasets.underwater import CLASS_COLOURS
from tests.conftest import ROOT, event_scalars

SAM_CONFIG = str(ROOT / 'configs' / 'sam_vit-tiny_inair.py')
SAM = str(ROOT / 'checkpoints' / 'sam_vit-tiny_inair.pth')


@pytest.fixture(scope='module')
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp('media')
    for medium in ('underwater', 'in_air'):
        generate_synthetic_dataset(str(root / medium), splits=dict(test=2), image_size=(128, 96),
                                   seed=4, min_object_size=0.3, medium=medium, progress=False)
    return root


def test_use_data_root_points_every_split_and_evaluator():
    cfg = use_data_root(Config.fromfile(str(ROOT / 'configs' / 'bipa_demo_synthetic.py')),
                        '/data/x')
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        assert dataset.data_root == '/data/x/'
        if split != 'train':
            assert cfg[f'{split}_evaluator'].ann_file == f'/data/x/annotations/{split}.json'


def test_build_runner_configures_the_cuda_allocator_first(monkeypatch, tmp_path):
    """Every runner the package builds (tools/train.py, tools/test.py,
    reproduce.py, the demo) gets env_cfg.cuda_alloc_conf, and logs it."""
    monkeypatch.delenv('PYTORCH_CUDA_ALLOC_CONF', raising=False)
    runner = build_runner(str(ROOT / 'configs' / 'bipa_demo_synthetic.py'),
                          work_dir=str(tmp_path), cfg_options={
                              'env_cfg.cuda_alloc_conf': 'max_split_size_mb:64'})
    assert os.environ['PYTORCH_CUDA_ALLOC_CONF'] == 'max_split_size_mb:64'
    with open(runner.logger.log_file) as f:
        assert 'CUDA caching allocator: PYTORCH_CUDA_ALLOC_CONF=max_split_size_mb:64' in f.read()


def test_runners_of_one_second_write_to_their_own_log_dirs(tmp_path):
    """Two runners of one config and experiment name (as two started in the
    same second): each writes its scalars to its own log dir."""
    dirs = []
    for run in ('before', 'train'):
        runner = build_runner(str(ROOT / 'configs' / 'bipa_demo_synthetic.py'),
                              work_dir=str(tmp_path / run), cfg_options={
                                  'experiment_name': f'{tmp_path.name}_same',
                                  'log_level': 'WARNING'})
        runner.visualizer.add_scalars({'x': 1.0}, step=1)
        dirs.append(runner.log_dir)
        runner.visualizer.close()
    assert dirs[0] != dirs[1]
    for log_dir in dirs:
        assert event_scalars(log_dir) == {'x': [(1, 1.0)]}


def test_domain_gap_scores_the_same_scenes_in_both_media(media, tmp_path):
    gap = measure_domain_gap(SAM_CONFIG, SAM, in_air=str(media / 'in_air'),
                             underwater=str(media / 'underwater'), work_dir=str(tmp_path),
                             cfg_options=dict(log_level='WARNING'))
    assert set(gap) == {'in_air', 'underwater'}
    assert all(0 <= m['coco/segm_mAP'] <= 1 for m in gap.values())
    assert format_domain_gap(gap).splitlines()[1].startswith('in_air')


def test_other_scenes_are_refused(media, tmp_path):
    generate_synthetic_dataset(str(tmp_path), splits=dict(test=2), image_size=(128, 96), seed=5,
                               min_object_size=0.3, medium='in_air', progress=False)
    check_same_scenes(str(media / 'in_air'), str(media / 'underwater'))
    with pytest.raises(AnnotationError, match='different scenes'):
        check_same_scenes(str(tmp_path), str(media / 'underwater'))


def test_draw_instances_enlarges_and_tints():
    image = np.full((32, 48, 3), 100, np.uint8)
    mask = np.zeros((1, 32, 48), bool)
    mask[0, 8:24, 10:30] = True
    out = draw_instances(image, masks=mask, boxes=np.array([[10., 8., 30., 24.]]), labels=[0],
                         classes=('fish', ), scores=[0.9], scale=4, title='t')
    assert out.shape == (26 + 128, 192, 3)
    inside = out[26 + 4 * 16, 4 * 25].astype(int)  # a pixel of the mask, away from the label
    expected = 0.55 * 100 + 0.45 * np.array(CLASS_COLOURS['fish'])
    assert np.abs(inside - expected).max() <= 1
    assert (out[26 + 4 * 2, 4 * 40] == 100).all()  # outside: the image, enlarged
