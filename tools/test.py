"""Test (and evaluate) a BiPA model.

``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
[--show] [--show-dir DIR] [--cfg-options ...]``

The runner logs the COCO bbox/segm tables; :func:`main` returns the metrics.
"""
import argparse
import os
import os.path as osp
import sys

from mmdet.evaluation import DumpDetResults
from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine.config import Config, DictAction

import bipa  # noqa: F401  (registers BiPA; lets torch load mmengine checkpoints)
from bipa.apis import run_cli, runner_from_cfg
from bipa.datasets import check_evaluation_split
from bipa.models import check_checkpoint_fits
from bipa.utils import check_run_inputs, load_run_config, shutdown_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a BiPA detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics and logs')
    parser.add_argument('--out', type=str,
                        help='dump the predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show the predictions in a window')
    parser.add_argument(
        '--show-dir',
        help='save the drawn predictions under work_dir/TIMESTAMP/SHOW_DIR')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='the interval of --show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. test_dataloader.batch_size=1')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--allow-partial', action='store_true',
                        help='load a checkpoint whose keys do not all fit the model')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must be a .pkl or .pickle file, got {args.out}')
    return args


def check_checkpoint(checkpoint: str) -> None:
    """Fail early, before the runner is built, on a missing local checkpoint."""
    if '://' in checkpoint:  # http(s)://, s3://, ...: left to mmengine's backends
        return
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')


def enable_visualization(cfg: Config, args) -> Config:
    """Turn on ``DetVisualizationHook`` for ``--show`` / ``--show-dir``."""
    hook = cfg.default_hooks.get('visualization', None)
    if hook is None:
        raise RuntimeError('--show/--show-dir need a visualization hook in default_hooks, '
                           "e.g. visualization=dict(type='DetVisualizationHook')")
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        hook['test_out_dir'] = args.show_dir
    return cfg


def build_cfg(args) -> Config:
    cfg = load_run_config(args.config, cfg_options=args.cfg_options,
                          work_dir=args.work_dir, launcher=args.launcher)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show or args.show_dir:
        cfg = enable_visualization(cfg, args)
    check_run_inputs(cfg, training=False)
    return cfg


def main(argv=None) -> dict:
    args = parse_args(argv)
    check_checkpoint(args.checkpoint)
    # fewer recompilations when the model is compiled
    setup_cache_size_limit_of_dynamo()
    cfg = build_cfg(args)
    evaluator = cfg.get('test_evaluator') or {}
    runner = runner_from_cfg(cfg)
    if isinstance(evaluator, dict) and not evaluator.get('format_only', False):
        # the dataset runner.test() evaluates (mmengine builds the test loop once):
        # a second build would read the json again and repeat its warnings
        check_evaluation_split(runner.test_dataloader.dataset)
    if '://' not in args.checkpoint:
        check_checkpoint_fits(runner.model, args.checkpoint, allow_partial=args.allow_partial)
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    metrics = runner.test()
    del runner  # its DDP wrapper holds the process group
    shutdown_distributed()
    return metrics


if __name__ == '__main__':
    sys.exit(run_cli(main))
