"""Draw a dataset's ground truth (boxes, masks, class names) after its pipeline.

``python tools/browse_dataset.py CONFIG [--split train|val|test]
[--output-dir DIR] [--not-show] [--show-interval 2] [--max-images N]
[--cfg-options ...]``

Shows each image of the chosen split's dataloader dataset in a window, and/or
saves it as ``OUTPUT_DIR/NAME``. The images are what the model sees (after
the pipeline: resized, flipped, ...).
"""
import argparse
import os.path as osp
import time

import mmcv
from mmdet.models.utils import mask2ndarray
from mmdet.registry import DATASETS, VISUALIZERS
from mmdet.structures.bbox import BaseBoxes
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

import bipa  # noqa: F401  (registers the BiPA datasets)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw the ground truth of a dataset')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                        help='browse the dataset of this dataloader')
    parser.add_argument('--output-dir', default=None, type=str,
                        help='save the drawn images in this folder')
    parser.add_argument('--not-show', default=False, action='store_true',
                        help='do not open a window (needs --output-dir)')
    parser.add_argument('--show-interval', type=float, default=2,
                        help='seconds each image is shown')
    parser.add_argument('--max-images', type=int, default=None,
                        help='draw at most this many images (default: all)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. train_dataloader.dataset.data_root=DIR')
    args = parser.parse_args(argv)
    if args.not_show and args.output_dir is None:
        parser.error('--not-show without --output-dir would draw nothing')
    if args.max_images is not None and args.max_images < 1:
        parser.error('--max-images must be at least 1')
    return args


def gt_in_original_coords(dataset) -> bool:
    """Whether the pipeline loads the annotations after transforming the image
    (test pipelines resize first), so they are in the original image's frame."""
    while getattr(dataset, 'pipeline', None) is None:
        inner = getattr(dataset, 'dataset', None) or getattr(dataset, 'datasets', [None])[0]
        if inner is None:
            return False
        dataset = inner
    names = [type(t).__name__ for t in dataset.pipeline.transforms]
    first_ann = next((i for i, n in enumerate(names) if 'LoadAnnotations' in n), None)
    return first_ann is not None and any('Load' not in n for n in names[:first_ann])


def main(argv=None) -> int:
    """Returns the number of images drawn."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))

    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    vis_cfg = cfg.visualizer.copy()
    # a fresh instance (the name is the key of mmengine's instance manager),
    # with no backend: images are written with out_file
    vis_cfg.name = f'browse_dataset_{time.time_ns()}'
    vis_cfg.pop('vis_backends', None)
    vis_cfg.pop('save_dir', None)
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo

    # draw such annotations on the image scaled back to its original size
    back_to_original = gt_in_original_coords(dataset)

    total = len(dataset) if args.max_images is None else min(len(dataset), args.max_images)
    progress_bar = ProgressBar(total)
    for index in range(total):
        item = dataset[index]
        img = item['inputs'].permute(1, 2, 0).numpy()[..., [2, 1, 0]]  # BGR to RGB
        data_sample = item['data_samples'].numpy()
        gt_instances = data_sample.gt_instances
        name = osp.basename(data_sample.img_path)
        if back_to_original and 'ori_shape' in data_sample:
            h, w = data_sample.ori_shape[:2]
            img = mmcv.imresize(img, (w, h))

        bboxes = gt_instances.get('bboxes', None)
        if isinstance(bboxes, BaseBoxes):
            gt_instances.bboxes = bboxes.tensor
        masks = gt_instances.get('masks', None)
        if masks is not None:
            gt_instances.masks = mask2ndarray(masks).astype(bool)
        data_sample.gt_instances = gt_instances

        out_file = osp.join(args.output_dir, name) if args.output_dir is not None else None
        visualizer.add_datasample(
            name, img, data_sample, draw_pred=False, show=not args.not_show,
            wait_time=args.show_interval, out_file=out_file)
        progress_bar.update()
    return total


if __name__ == '__main__':
    main()
