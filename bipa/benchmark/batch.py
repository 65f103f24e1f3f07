"""Synthetic mmdet batches of a fixed size and instance count, for benchmarks
and device checks."""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData


def keep_ratio_shape(ori_shape: Sequence[int], input_size: int) -> Tuple[int, int]:
    """``(h, w)`` of an ``ori_shape`` image resized, keeping its aspect ratio,
    to fit ``input_size x input_size`` (mmdet's ``Resize(keep_ratio=True)``)."""
    h, w = ori_shape[:2]
    scale = min(input_size / h, input_size / w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def build_synthetic_batch(batch_size: int,
                          input_size: int,
                          *,
                          num_instances: int = 8,
                          num_classes: int = 1,
                          seed: int = 0,
                          img_shape: Optional[Sequence[int]] = None,
                          ori_shape: Optional[Sequence[int]] = None) -> dict:
    """A batch as a dataloader gives it: ``dict(inputs=[uint8 (3, h, w)],
    data_samples=[DetDataSample])``, with ``num_instances`` GT instances per
    image (labels in ``[0, num_classes)``, boxes, and an ellipse or rectangle
    mask filling each box).

    Images are ``img_shape`` (default: the whole ``input_size`` square), to be
    padded to ``input_size`` by the data preprocessor; boxes and masks are in
    image coordinates. ``ori_shape`` (default ``img_shape``) sets
    ``scale_factor`` as a ``Resize`` from an image of that size would, so that
    a rescaled prediction comes back at ``ori_shape``.

    Why neither of the two existing generators: mmdet's ``demo_mm_inputs``
    draws labels from ``1..num_classes - 1`` (never 0; a one-class model gets
    an error), fixes ``scale_factor`` to ``(1.1, 1.2)`` whatever the shapes
    (so a rescaled prediction cannot be checked against ``ori_shape``), fixes
    its seed and fills masks with random speckle. The scenes of
    :mod:`bipa.datasets.synthetic` are realistic, but their 1-6 objects are
    chosen by the scene and a 1024-px image takes 0.2 s to render. Speed and
    memory depend on the number of instances (RoI targets, SAM decoder calls),
    so a benchmark needs it fixed, at any input size, in milliseconds.
    """
    rng = np.random.RandomState(seed)
    h, w = img_shape[:2] if img_shape is not None else (input_size, input_size)
    ori_h, ori_w = ori_shape[:2] if ori_shape is not None else (h, w)
    if h > input_size or w > input_size:
        raise ValueError(f'img_shape {(h, w)} does not fit the input size {input_size}')
    yy, xx = np.mgrid[:h, :w]
    inputs, samples = [], []
    for idx in range(batch_size):
        inputs.append(torch.from_numpy(rng.randint(0, 256, (3, h, w), dtype=np.uint8)))
        bw = rng.uniform(0.05, 0.5, num_instances) * w
        bh = rng.uniform(0.05, 0.5, num_instances) * h
        x1 = rng.uniform(0, 1, num_instances) * (w - bw)
        y1 = rng.uniform(0, 1, num_instances) * (h - bh)
        boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1).astype(np.float32)
        masks = np.zeros((num_instances, h, w), dtype=np.uint8)
        for k, (a, b, c, d) in enumerate(boxes):
            inside = (xx >= a) & (xx < c) & (yy >= b) & (yy < d)
            if rng.rand() < 0.5:  # the ellipse inscribed in the box
                cx, cy, rx, ry = (a + c) / 2, (b + d) / 2, (c - a) / 2, (d - b) / 2
                inside &= ((xx + 0.5 - cx) / rx)**2 + ((yy + 0.5 - cy) / ry)**2 <= 1
            masks[k] = inside
        gt = InstanceData()
        gt.bboxes = torch.from_numpy(boxes)
        gt.labels = torch.from_numpy(rng.randint(0, num_classes, num_instances)).long()
        gt.masks = BitmapMasks(masks, h, w)
        sample = DetDataSample()
        sample.set_metainfo(dict(
            img_id=idx, img_path=f'<synthetic-{seed}-{idx}>', ori_shape=(ori_h, ori_w),
            img_shape=(h, w), pad_shape=(input_size, input_size),
            batch_input_shape=(input_size, input_size),
            scale_factor=(w / ori_w, h / ori_h), flip=False, flip_direction=None))
        sample.gt_instances = gt
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
