"""Print the upper-level objective f around the identity prompt for a trained checkpoint.

    python tools/analysis/prompt_landscape.py CONFIG CHECKPOINT [--work-dir D]
        [--scales 0.25 0.5 0.75 0.9 1 1.1 1.25 1.5 2 3] [--data-root DIR]

f is the prompt search's objective (mean mask BCE on the run's D_val, GT
boxes as RoIs), evaluated for every group weight set to the same scale s
(rho = s * e) and for one group at a time moved to the interval's bounds.
It shows where f's minimum lies relative to the search interval B.
"""
import argparse
import os.path as osp


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'prompt_landscape'))
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--scales', nargs='+', type=float,
                        default=[0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)

    from bipa.apis import build_runner
    runner = build_runner(args.config, work_dir=args.work_dir, data_root=args.data_root,
                          cfg_options=dict(args.cfg_options, log_level='WARNING'))
    loop = runner.build_train_loop(runner.cfg.train_cfg)
    runner.load_checkpoint(args.checkpoint, map_location='cpu')  # a lean one completed
    prompt = loop.detector.dense_prompt
    trained = prompt.get_group_weights().tolist()
    objective = loop.build_objective()
    objective.prepare()
    n = prompt.num_groups
    low, high = prompt.search_interval
    out = dict(trained=(trained, objective(trained)),
               scales={s: objective([s] * n) for s in args.scales})
    print(f'f at the checkpoint\'s rho weights: {out["trained"][1]:.5f}')
    print('f(s * e), every group weight = s (B = '
          f'[{low:g}, {high:g}]):')
    for s, f in out['scales'].items():
        print(f'  s={s:<5g} f={f:.5f}')
    print('one group at a bound, the others at 1:')
    out['groups'] = {}
    for g in range(n):
        row = []
        for bound in sorted({low, high} - {1.0}):
            w = [1.0] * n
            w[g] = bound
            row.append((bound, objective(w)))
        out['groups'][g] = row
        print(f'  group {g:2d}: ' + '  '.join(f'w={b:g}: f={f:.5f}' for b, f in row))
    objective.free()
    return out


if __name__ == '__main__':
    from bipa.apis import run_cli
    raise SystemExit(run_cli(main))
