"""Train a BiPA model: ``python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]``."""
import argparse
import os
import sys

from mmengine.config import Config, DictAction

from bipa.apis import run_cli, runner_from_cfg
from bipa.utils import check_run_inputs, load_run_config, shutdown_distributed, switch_amp_off


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a BiPA detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and the study')
    amp = parser.add_mutually_exclusive_group()
    amp.add_argument('--amp', action='store_true',
                     help='enable automatic mixed precision (bf16 where supported)')
    amp.add_argument('--no-amp', action='store_true',
                     help="train in float32 (optim_wrapper.type='OptimWrapper'), e.g. a config "
                     'with AMP on a machine without a GPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the total batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, from the latest one in the '
        'work dir, or the newest readable iter_*.pth if that one is torn (training, search '
        'and fine-tuning all resume where they stopped)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. train_cfg.strategy=naive')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args) -> Config:
    cfg = load_run_config(args.config, cfg_options=args.cfg_options,
                          work_dir=args.work_dir, launcher=args.launcher)
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('dtype', 'bfloat16')
    if args.no_amp:
        switch_amp_off(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    check_run_inputs(cfg, training=True)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    runner = runner_from_cfg(cfg)
    runner.train()
    del runner  # its DDP wrapper holds the process group
    shutdown_distributed()


if __name__ == '__main__':
    sys.exit(run_cli(main))
