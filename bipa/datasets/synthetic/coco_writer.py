"""Writes the synthetic dataset in COCO format."""
import json
import os
import os.path as osp
import zlib
from typing import Dict, Mapping, Optional, Sequence

import cv2
import numpy as np

from ...utils import check_choice
from ..underwater import SYNTHETIC_CLASSES
from .optics import MEDIA
from .render import render_synthetic_image

DEFAULT_SPLITS = {'train': 1000, 'val': 200, 'test': 200}
DEFAULT_IMAGE_SIZE = (512, 512)  # (H, W)
JPEG_QUALITY = 95

def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(
        [int(seed), zlib.crc32(split.encode('utf-8')), int(index)])


def _annotation(mask: np.ndarray, ann_id: int, img_id: int, cat_id: int):
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    ys = np.flatnonzero(mask.any(1))
    xs = np.flatnonzero(mask.any(0))
    x, y = int(xs[0]), int(ys[0])
    return dict(id=ann_id, image_id=img_id, category_id=cat_id,
                segmentation=dict(size=[int(mask.shape[0]),
                                        int(mask.shape[1])],
                                  counts=rle['counts'].decode('ascii')),
                area=int(mask.sum()),
                bbox=[x, y, int(xs[-1]) - x + 1, int(ys[-1]) - y + 1],
                iscrowd=0)


def generate_synthetic_dataset(out_dir: str,
                               *,
                               splits: Optional[Mapping[str, int]] = None,
                               image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
                               seed: int = 0,
                               min_object_size: float = 0.07,
                               medium: str = 'underwater',
                               progress: bool = True) -> Dict:
    """Write the synthetic dataset in COCO format.

    Args:
        out_dir: output folder; gets ``annotations/{split}.json`` and
            ``{split}/{index:06d}.jpg`` (``file_name`` is relative to the
            split folder: use ``data_prefix=dict(img='{split}/')``).
        splits: images per split, default :data:`DEFAULT_SPLITS`
            (train 1000, val 200, test 200). Split names must be plain
            folder names.
        image_size: ``(H, W)``, default ``(512, 512)``.
        seed: non-negative integer; the same seed gives byte-identical files.
        min_object_size: smallest object scale as a fraction of the shorter
            image side (default 0.07; larger values give an easier dataset).
        medium: ``'underwater'`` or ``'in_air'``: the same seed gives the
            same scenes, masks and json annotations in both media.
        progress: show a tqdm progress bar per split.

    Returns:
        dict with ``out_dir``, ``classes``, ``image_size``, ``seed``, ``medium`` and
        ``splits``: ``{split: dict(ann_file, img_dir, img_prefix,
        num_images, num_instances)}``.
    """
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    H, W = int(image_size[0]), int(image_size[1])
    seed = int(seed)
    if seed < 0:
        raise ValueError('seed must be non-negative')
    check_choice(medium, MEDIA, 'medium')
    for name, n in splits.items():
        if not name or name in ('.', '..', 'annotations') or '/' in name \
                or '\\' in name:
            raise ValueError(f'bad split name {name!r}')
        if int(n) < 0:
            raise ValueError(f'negative image count for split {name!r}')
    categories = [dict(id=i + 1, name=c, supercategory='underwater')
                  for i, c in enumerate(SYNTHETIC_CLASSES)]
    ann_dir = osp.join(out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    summary = dict(out_dir=out_dir, classes=SYNTHETIC_CLASSES,
                   image_size=(H, W), seed=seed, medium=medium, splits={})
    for split, n in splits.items():
        img_dir = osp.join(out_dir, split)
        os.makedirs(img_dir, exist_ok=True)
        images, anns = [], []
        indices = range(int(n))
        if progress:
            from tqdm import tqdm
            indices = tqdm(indices, desc=f'synthetic {split}', unit='img')
        for idx in indices:
            sample = render_synthetic_image(image_rng(seed, split, idx),
                                            (H, W), min_object_size, medium)
            file_name = f'{idx:06d}.jpg'
            ok, buf = cv2.imencode(
                '.jpg', cv2.cvtColor(sample['image'], cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError(f'could not encode {file_name}')
            with open(osp.join(img_dir, file_name), 'wb') as f:
                f.write(buf.tobytes())
            img_id = idx + 1
            wat = sample['water']
            images.append(dict(
                id=img_id, file_name=file_name, height=H, width=W,
                water=dict(beta=[round(float(b), 5) for b in wat['beta']],
                           B=[round(float(b), 5) for b in wat['B']],
                           turbidity=round(wat['turbidity'], 5))))
            for mask, lab in zip(sample['masks'], sample['labels']):
                anns.append(_annotation(mask, len(anns) + 1, img_id,
                                        int(lab) + 1))
        coco = dict(
            info=dict(description='BiPA synthetic underwater instance '
                      'segmentation', version='1.0', seed=seed, split=split,
                      image_size=[H, W], medium=medium),
            licenses=[], images=images, annotations=anns,
            categories=categories)
        ann_file = osp.join(ann_dir, f'{split}.json')
        with open(ann_file, 'w') as f:
            json.dump(coco, f, separators=(',', ':'))
        summary['splits'][split] = dict(
            ann_file=ann_file, img_dir=img_dir, img_prefix=f'{split}/',
            num_images=len(images), num_instances=len(anns))
    return summary
