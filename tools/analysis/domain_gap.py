"""Measure the domain gap: a SAM's oracle-box segm mAP on the same test scenes
in air and under water.

    python tools/analysis/domain_gap.py [--checkpoint checkpoints/sam_vit-tiny_inair.pth]
        [--sam-config configs/sam_vit-tiny_inair.py]
        [--in-air data/synthetic_inair_demo] [--underwater data/synthetic_underwater_demo]

Both data roots must hold the same scenes (``generate_synthetic.py`` with the
same ``--seed`` and sizes, ``--medium in_air`` and ``underwater``): SAM is
prompted with the same ground-truth boxes, so the difference is the medium's.
"""
import argparse
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=' '.join(__doc__.split('\n\n')[0].split()))
    parser.add_argument('--sam-config', default=osp.join(ROOT, 'configs', 'sam_vit-tiny_inair.py'))
    parser.add_argument('--checkpoint',
                        default=osp.join(ROOT, 'checkpoints', 'sam_vit-tiny_inair.pth'))
    parser.add_argument('--in-air', default=osp.join(ROOT, 'data', 'synthetic_inair_demo'))
    parser.add_argument('--underwater',
                        default=osp.join(ROOT, 'data', 'synthetic_underwater_demo'))
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'domain_gap'))
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    from bipa.apis import format_domain_gap, measure_domain_gap
    args = parse_args(argv)
    gap = measure_domain_gap(args.sam_config, args.checkpoint, in_air=args.in_air,
                             underwater=args.underwater, work_dir=args.work_dir)
    print(format_domain_gap(gap))
    return gap


if __name__ == '__main__':
    from bipa.apis import run_cli
    raise SystemExit(run_cli(main))
