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
import os.path as osp
import sys
import warnings

import cv2

import bipa  # noqa: F401  (registers BiPA; lets torch load mmengine checkpoints)
from bipa.apis import build_inferencer, expand_inputs, predict_files, run_cli
from bipa.datasets import ImageReadError
from bipa.utils import examples


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

    inferencer = build_inferencer(args.config, args.checkpoint, device=args.device,
                                  allow_partial=args.allow_partial)
    records = predict_files(inferencer, paths, out_dir=args.out_dir, score_thr=args.score_thr,
                            batch_size=args.batch_size)
    out_file = osp.join(args.out_dir, 'predictions.json')
    num = sum(len(r['instances']) for r in records)
    print(f'{len(records)} images, {num} instances above {args.score_thr}: '
          f'{out_file}; drawings in {osp.join(args.out_dir, "vis")}')
    if unreadable:
        raise ImageReadError(f'{len(unreadable)} of {len(unreadable) + len(paths)} inputs '
                             f'could not be read ({examples(unreadable, limit=3)}); '
                             f'{out_file} holds the others')
    return records


if __name__ == '__main__':
    sys.exit(run_cli(main))
