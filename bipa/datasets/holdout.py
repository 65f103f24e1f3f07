"""Deterministic hold-out of D_val from the training annotations."""
from typing import Optional, Union

import numpy as np
from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset

from ..utils import check_choice

HOLDOUT_PARTS = ('train', 'holdout')
#: the seed of a holdout that names none
HOLDOUT_SEED = 0


class HoldoutError(ValueError):
    """A holdout that leaves D_tr or D_val empty."""


def holdout_image_ids(img_ids, *, fraction: Optional[float] = None,
                      count: Optional[int] = None, seed: int = HOLDOUT_SEED) -> set:
    """The image ids held out: ``count`` images, or ``round(fraction * N)``, drawn
    by a permutation seeded with ``seed`` of the sorted ids (so the choice does
    not depend on the annotation file's order)."""
    ids = sorted(set(img_ids))
    if (fraction is None) == (count is None):
        raise ValueError(f'holdout needs exactly one of fraction or count, got '
                         f'fraction={fraction}, count={count}')
    if fraction is not None:
        if not 0 < fraction < 1:
            raise ValueError(f'holdout fraction must lie in (0, 1), got {fraction}')
        count = int(round(fraction * len(ids)))
    if not 0 < count < len(ids):
        raise HoldoutError(f'train_cfg.holdout: cannot hold out {count} of {len(ids)} training '
                           'images: need at least one on each side (more training images, or '
                           'another fraction or count)')
    perm = np.random.default_rng(seed).permutation(len(ids))
    return {ids[i] for i in perm[:count]}


@DATASETS.register_module(name='HoldoutSplit')
def build_holdout_split(dataset: Union[dict, BaseDataset], *, part: str,
                        fraction: Optional[float] = None, count: Optional[int] = None,
                        seed: int = HOLDOUT_SEED) -> BaseDataset:
    """Build ``dataset`` and keep its ``part``: ``'holdout'`` is D_val,
    ``'train'`` the rest (D_tr). Both parts of the same spec are disjoint and
    together cover the dataset."""
    check_choice(part, HOLDOUT_PARTS, 'part')
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    dataset.full_init()
    img_ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
    held = holdout_image_ids(img_ids, fraction=fraction, count=count, seed=seed)
    keep = [i for i, img_id in enumerate(img_ids) if (img_id in held) == (part == 'holdout')]
    return dataset.get_subset(keep)
