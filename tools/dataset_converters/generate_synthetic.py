"""Generate the synthetic instance segmentation dataset (COCO), under water or in air.

Example::

    python tools/dataset_converters/generate_synthetic.py \
        --out data/synthetic_underwater --train 1000 --val 200 --test 200 \
        --size 512 512 --seed 0 [--medium in_air] [--min-object-size 0.07]

The same ``--seed`` gives the same scenes, masks and annotations in both
media.

writes ``annotations/{train,val,test}.json`` and ``{train,val,test}/*.jpg``
under ``--out``; ``file_name`` is relative to the split folder, so a config
uses ``ann_file='annotations/train.json', data_prefix=dict(img='train/')``.
"""
import argparse

from bipa.datasets.synthetic import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_SPLITS,
    MEDIA,
    generate_synthetic_dataset,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='data/synthetic_underwater',
                   help='output folder (default: %(default)s)')
    for split, n in DEFAULT_SPLITS.items():
        p.add_argument(f'--{split}', type=int, default=n, metavar='N',
                       help=f'number of {split} images (default: %(default)s)')
    p.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                   default=list(DEFAULT_IMAGE_SIZE),
                   help='image height and width (default: %(default)s)')
    p.add_argument('--seed', type=int, default=0,
                   help='random seed (default: %(default)s)')
    p.add_argument('--medium', choices=MEDIA, default='underwater',
                   help='under water or in daylight (default: %(default)s)')
    p.add_argument('--min-object-size', type=float, default=0.07, metavar='F',
                   help='smallest object scale as a fraction of the shorter image side '
                   '(default: %(default)s)')
    p.add_argument('--no-progress', action='store_true',
                   help='do not show progress bars')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    splits = {split: getattr(args, split) for split in DEFAULT_SPLITS}
    info = generate_synthetic_dataset(
        args.out, splits=splits, image_size=tuple(args.size), seed=args.seed,
        min_object_size=args.min_object_size, medium=args.medium,
        progress=not args.no_progress)
    h, w = info['image_size']
    print(f'synthetic {info["medium"]} dataset in {info["out_dir"]} '
          f'({h}x{w}, seed {info["seed"]}, classes: '
          f'{", ".join(info["classes"])})')
    for split, s in info['splits'].items():
        print(f'  {split}: {s["num_images"]} images, {s["num_instances"]} '
              f'instances -> {s["ann_file"]} (images in {s["img_dir"]}, '
              f"data_prefix=dict(img='{s['img_prefix']}'))")
    return info


if __name__ == '__main__':
    main()
