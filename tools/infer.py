"""Run a trained BiPA model on images.

``python tools/infer.py CONFIG CHECKPOINT INPUTS... [--out-dir outputs/]
[--score-thr 0.3] [--device cpu] [--batch-size 1]``

INPUTS are image files, folders (their images, not recursive) or glob
patterns (quote them; ``**`` recurses). Images may have any size and aspect
ratio. Writes, under ``--out-dir``:

- ``vis/NAME``: each image with its predicted boxes, masks and class names;
- ``preds/STEM.json``: mmdet's per-image predictions (all instances);
- ``predictions.json``: one list over the images, each
  ``{"image": PATH, "instances": [{"label", "class", "score", "bbox" (x1, y1,
  x2, y2), "mask" (COCO RLE)}]}`` with the instances scoring above
  ``--score-thr``.

The class names (and palette) come from the checkpoint's
``meta['dataset_meta']``, which mmengine saves with every checkpoint.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
import warnings
from collections import Counter
from typing import List, Sequence

import cv2
from mmengine.config import Config

import bipa  # noqa: F401  (registers BiPA; lets torch load mmengine checkpoints)
from bipa.datasets import ImageReadError
from bipa.models import check_checkpoint_fits
from bipa.utils.cli import run_cli

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Predict instances on images with BiPA')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('inputs', nargs='+',
                        help='image files, folders or (quoted) glob patterns')
    parser.add_argument('--out-dir', default='outputs/',
                        help='where vis/, preds/ and predictions.json go')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='keep (draw and list) the instances scoring above this')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda, cuda:1')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument('--allow-partial', action='store_true',
                        help='use a checkpoint whose keys do not all fit the model')
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error('--batch-size must be at least 1')
    return args


def is_image(path: str) -> bool:
    return osp.isfile(path) and path.lower().endswith(IMG_EXTENSIONS)


def expand_inputs(inputs: Sequence[str]) -> List[str]:
    """Image paths of files, folders and glob patterns, in order, without repeats.

    Raises:
        FileNotFoundError: naming the input, when one gives no image.
    """
    paths = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(osp.join(item, f) for f in os.listdir(item))
            found = [p for p in found if is_image(p)]
            if not found:
                raise FileNotFoundError(f'no images in folder: {item}')
        elif osp.isfile(item):
            found = [item]
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            found = [p for p in matches if is_image(p)]
            if not found:
                raise FileNotFoundError(f'no images match the pattern: {item}')
        else:
            raise FileNotFoundError(f'no such image, folder or pattern: {item}')
        paths.extend(found)
    unique = list(dict.fromkeys(paths))
    repeated = [n for n, c in Counter(osp.basename(p) for p in unique).items() if c > 1]
    if repeated:
        warnings.warn(f'several inputs are named {repeated[:5]}: their files under '
                      f'vis/ and preds/ overwrite each other (predictions.json keeps all)')
    return unique


def combine_predictions(paths: Sequence[str], predictions: Sequence[dict],
                        classes: Sequence[str], score_thr: float) -> list:
    """One json-ready record per image of the instances scoring above ``score_thr``.

    ``predictions`` are ``DetInferencer``'s dicts (``labels``, ``scores``,
    ``bboxes`` and ``masks``, the masks COCO RLE from ``pycocotools.mask.encode``).
    """
    records = []
    for path, pred in zip(paths, predictions):
        masks = pred.get('masks', [None] * len(pred['labels']))
        instances = []
        for label, score, bbox, mask in zip(pred['labels'], pred['scores'], pred['bboxes'],
                                            masks):
            if score <= score_thr:
                continue
            inst = {'label': int(label), 'class': classes[label], 'score': float(score),
                    'bbox': [float(v) for v in bbox]}
            if mask is not None:
                counts = mask['counts']
                inst['mask'] = dict(size=list(mask['size']),
                                    counts=counts.decode() if isinstance(counts, bytes)
                                    else counts)
            instances.append(inst)
        records.append(dict(image=path, instances=instances))
    return records


def main(argv=None) -> list:
    args = parse_args(argv)
    for kind, path in (('config', args.config), ('checkpoint', args.checkpoint)):
        if '://' not in path and not osp.isfile(path):
            raise FileNotFoundError(f'{kind} file not found: {path}')
    paths, unreadable = [], []
    for path in expand_inputs(args.inputs):
        (paths if cv2.imread(path) is not None else unreadable).append(path)
    for path in unreadable:
        warnings.warn(f'{path}: cannot be read as an image (corrupt or not an image); '
                      'skipped')
    if not paths:
        raise ImageReadError(f'none of the {len(unreadable)} inputs can be read as an image')

    # after the checks: importing mmdet.apis is slow
    from mmdet.apis import DetInferencer

    cfg = Config.fromfile(args.config)
    # no LocalVisBackend: DetInferencer writes vis/ itself, and the backend
    # would only warn that it has no save_dir
    if 'visualizer' in cfg:
        cfg.visualizer.pop('vis_backends', None)
    # DetInferencer replaces the pipeline's 'LoadImageFromFile' by its own
    # loader (for paths and arrays) and requires it by that name
    for transform in cfg.test_dataloader.dataset.pipeline:
        if transform['type'] == 'CheckedLoadImageFromFile':
            transform['type'] = 'LoadImageFromFile'
    inferencer = DetInferencer(model=cfg, weights=args.checkpoint, device=args.device,
                               show_progress=True)
    if '://' not in args.checkpoint:
        check_checkpoint_fits(inferencer.model, args.checkpoint,
                              allow_partial=args.allow_partial)
    classes = inferencer.model.dataset_meta['classes']
    results = inferencer(paths, batch_size=args.batch_size, out_dir=args.out_dir,
                         pred_score_thr=args.score_thr, no_save_pred=False, show=False)

    records = combine_predictions(paths, results['predictions'], classes, args.score_thr)
    os.makedirs(args.out_dir, exist_ok=True)
    out_file = osp.join(args.out_dir, 'predictions.json')
    with open(out_file, 'w') as f:
        json.dump(records, f)
    num = sum(len(r['instances']) for r in records)
    print(f'{len(records)} images, {num} instances above {args.score_thr}: '
          f'{out_file}; drawings in {osp.join(args.out_dir, "vis")}')
    if unreadable:
        raise ImageReadError(f'{len(unreadable)} of {len(unreadable) + len(paths)} inputs '
                             f'could not be read ({", ".join(unreadable[:3])}'
                             f'{" ..." if len(unreadable) > 3 else ""}); {out_file} holds '
                             'the others')
    return records


if __name__ == '__main__':
    sys.exit(run_cli(main))
