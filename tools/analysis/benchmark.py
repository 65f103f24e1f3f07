"""Speed and memory of a BiPA config on synthetic batches: train and test
steps, the floor of a step, a per-module breakdown, the prompt search and one
predict, in one process (the model is built once, with random weights).

    python tools/analysis/benchmark.py configs/bipa_uiis.py [--cfg-options ...] \
        [--batch-size 2 1] [--steps 10] [--warmup 2] [--device cuda|cpu] \
        [--parts] [--breakdown] [--search] [--predict 1080 1440] \
        [--memory-cap-gb 20] [--targets] [--json out.json] [--summary out.txt]

Each ``--batch-size`` is one run, in the given order. What each phase
measures: :mod:`bipa.benchmark.harness` and :mod:`bipa.benchmark.step_breakdown`;
``--targets`` checks :func:`bipa.benchmark.check_targets` and exits 1 when one
fails.
"""
import argparse
import json
import sys
from dataclasses import fields
from typing import Optional, Sequence

import torch
from mmengine.config import DictAction

from bipa.benchmark import (
    BenchmarkOptions,
    check_targets,
    exit_status,
    format_report,
    run_benchmark,
)
from bipa.benchmark.report import MAX_PEAK_GB, MAX_STEP_OVER_FLOOR, TARGET_BATCH_SIZE


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    d = BenchmarkOptions()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override config keys, e.g. model.backbone.grad_mode=checkpoint')
    p.add_argument('--batch-size', dest='batch_sizes', type=int, nargs='+', default=None,
                   help='images per batch, one run each (default: the train dataloader\'s)')
    p.add_argument('--steps', type=int, default=d.steps, help='timed iterations per phase')
    p.add_argument('--warmup', type=int, default=d.warmup, help='untimed iterations per phase')
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda if available)')
    p.add_argument('--input-size', type=int, default=None,
                   help='square input size (default: the preprocessor\'s pad_size_divisor)')
    p.add_argument('--instances', type=int, default=d.instances, help='GT instances per image')
    p.add_argument('--test-dtype', choices=('config', 'fp32', 'bf16', 'fp16'),
                   default=d.test_dtype, help='autocast of the test phase, the validation '
                   'pass and the predict (config: fp16 if val_cfg.fp16 else fp32)')
    p.add_argument('--parts', action='store_true', help='time the parts of a step\'s floor')
    p.add_argument('--breakdown', action='store_true', help='time a train step per module')
    p.add_argument('--breakdown-steps', type=int, default=d.breakdown_steps,
                   help='instrumented steps of --breakdown (after one untimed)')
    p.add_argument('--search', action='store_true', help='time the prompt search')
    p.add_argument('--search-batches', type=int, default=d.search_batches,
                   help='batches of D_val stand-in for --search')
    p.add_argument('--trials', type=int, default=d.trials, help='timed trials for --search')
    p.add_argument('--search-repeats', type=int, default=d.search_repeats,
                   help='timed cache builds and validation passes for --search')
    p.add_argument('--predict', type=int, nargs=2, default=None, metavar=('H', 'W'),
                   help='one predict of an H x W image; masks must come back at H x W')
    p.add_argument('--memory-cap-gb', type=float, default=None,
                   help='CUDA: let the caching allocator hold at most this much (1e9 bytes), '
                   'as on a card of that size; a step that does not fit raises out of memory')
    p.add_argument('--targets', action='store_true',
                   help='check the targets (exit status 1 when one fails)')
    p.add_argument('--target-batch-size', type=int, default=TARGET_BATCH_SIZE,
                   help='the run the memory and floor targets apply to')
    p.add_argument('--max-peak-gb', type=float, default=MAX_PEAK_GB,
                   help='target: peak memory (allocated and reserved), in 1e9 bytes')
    p.add_argument('--max-step-over-floor', type=float, default=MAX_STEP_OVER_FLOOR,
                   help='target: train step / floor')
    p.add_argument('--seed', type=int, default=d.seed)
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch\'s own)')
    p.add_argument('--json', default=None, help='write all numbers to this file')
    p.add_argument('--summary', default=None, help='write the report to this file')
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.breakdown_steps < 1:
        p.error('--steps and --breakdown-steps must be >= 1 and --warmup >= 0')
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: CUDA is not available')
    if args.memory_cap_gb is not None and device.type != 'cuda':
        raise SystemExit(f'--memory-cap-gb needs a CUDA device, not {device}')
    if args.threads:
        torch.set_num_threads(args.threads)
    options = BenchmarkOptions(**{f.name: getattr(args, f.name) for f in fields(BenchmarkOptions)})
    results = run_benchmark(args.config, device, options, cfg_options=args.cfg_options)
    if args.targets:
        results['checks'] = check_targets(results, batch_size=args.target_batch_size,
                                          max_peak_gb=args.max_peak_gb,
                                          max_step_over_floor=args.max_step_over_floor)
    report = format_report(results)
    print(report)
    if args.summary:
        with open(args.summary, 'w') as f:
            f.write(report + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
        print(f'wrote {args.json}')
    return results


if __name__ == '__main__':
    sys.exit(exit_status(main(sys.argv[1:])))
