"""D_val held out of the training set: holdout_image_ids and HoldoutSplit."""
import pytest
from mmdet.registry import DATASETS

from bipa.datasets import holdout_image_ids


@pytest.fixture
def tiny_train(tiny_data):
    """The training split of ``tiny_data`` (10 images) as a dataset config."""
    return dict(type='SyntheticUnderwaterDataset', data_root=f'{tiny_data}/',
                ann_file='annotations/train.json', data_prefix=dict(img='train/'), pipeline=[])


def image_ids(dataset) -> list:
    return [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]


def test_holdout_is_deterministic():
    ids = list(range(100, 200))
    assert holdout_image_ids(ids, fraction=0.1, seed=3) == holdout_image_ids(
        list(reversed(ids)), fraction=0.1, seed=3)
    assert len(holdout_image_ids(ids, count=7, seed=0)) == 7
    assert holdout_image_ids(ids, count=7, seed=0) != holdout_image_ids(ids, count=7, seed=1)
    with pytest.raises(ValueError, match='exactly one of fraction or count'):
        holdout_image_ids(ids, fraction=0.1, count=3)
    with pytest.raises(ValueError, match='cannot hold out 100 of 100'):
        holdout_image_ids(ids, count=100)


def test_fraction_holds_out_its_share():
    held = holdout_image_ids(range(100), fraction=0.1)
    assert len(held) == 10 and held <= set(range(100))


def test_tiny_set_holds_out_one_image(tiny_train):
    assert len(DATASETS.build(tiny_train)) == 10
    held = DATASETS.build(dict(type='HoldoutSplit', part='holdout', fraction=0.1,
                               dataset=tiny_train))
    assert len(held) == 1


@pytest.mark.parametrize('seed', [0, 1, 7])
@pytest.mark.parametrize('fraction', [0.1, 0.25, 0.4])
def test_parts_are_disjoint_and_cover_the_dataset(tiny_train, fraction, seed):
    parts = {part: image_ids(DATASETS.build(dict(
        type='HoldoutSplit', part=part, fraction=fraction, seed=seed, dataset=tiny_train)))
        for part in ('train', 'holdout')}
    assert not set(parts['train']) & set(parts['holdout'])
    assert sorted(parts['train'] + parts['holdout']) == sorted(
        image_ids(DATASETS.build(tiny_train)))
    assert len(parts['holdout']) == round(fraction * 10)
