"""Compare the upper level's solvers and objectives on the same checkpoints,
and probe whether what each chooses carries beyond D_val.

    python tools/analysis/search_compare.py CONFIG CKPT [CKPT ...]
        [--solvers tpe gp cmaes random gradient ...] [--objectives bce bce+dice dice ...]
        [--budget 12] [--corr-points 48] [--seed 0] [--jobs N]
        [--test] [--fresh DATA_ROOT]
        [--work-dir work_dirs/search_compare] [--data-root DIR] [--cfg-options KEY=VALUE ...]

Each checkpoint (w fixed, e.g. a run's pre-search ``iter_<r * K_a>.pth``) is
one round's problem: every solver registered in ``bipa.registry.SOLVERS``
(default: all) x every objective it can use gets ``--budget`` evaluations of
that f on the run's D_val, warm-started as the loop does (the checkpoint's
rho, the identity). Per run it records best f so far / f(identity) after each
evaluation, the wall time, and the D_val segm mAP (COCO, mmdet's CocoMetric;
the true boxes as detections, so the mask branch alone: f ``segm_map``) at
the best rho and at the identity. It measures each objective's Spearman rank
correlation with that segm mAP (f is minimised: -1 means f orders the
prompts exactly as the mAP does) over two sets of points, up to
``--corr-points`` each: ``global``, those the solvers that spread over B
tried under ``bce``, and ``local``, those the solvers that walk from the warm
start visited (a solver's ``explores``).

The transfer probe (``--test``, ``--fresh``): each run's chosen rho, at the
same fixed w, on other images: f (of the run's objective) and segm mAP with
the true boxes on the config's test split and on the test split of
``--fresh`` (freshly generated scenes, e.g. ``generate_synthetic.py --seed
1000``), and with ``--test`` also the segm mAP of the whole detector
(predicted boxes) on the test split; each beside the identity's.

Writes ``<work-dir>/<checkpoint name>.json`` per checkpoint (a restarted
command skips those present), ``results.md`` and ``results.png`` (best f so
far / f(identity) against evaluations, per objective, mean over checkpoints).
"""
import argparse
import contextlib
import io
import json
import os
import os.path as osp
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional

import numpy as np
import optuna


def checkpoint_name(path: str) -> str:
    """``<run folder>_<file stem>``, e.g. ``seed0_iter_800``."""
    return (f'{osp.basename(osp.dirname(osp.abspath(path)))}_'
            f'{osp.splitext(osp.basename(path))[0]}')


def _solver_cfg(solver: str, loop, seed: int):
    """The run's search config with ``solver`` (the run's solver keywords only
    for its own solver)."""
    import dataclasses
    cfg = loop.search_cfg
    return dataclasses.replace(
        cfg, solver=solver, solver_kwargs=cfg.solver_kwargs if solver == cfg.solver else {},
        study_name=solver, seed=seed)


def _runs(solvers: List[str], objectives: List[str]) -> List[tuple]:
    """The (solver, objective) pairs to run: each solver with every f it can use."""
    from bipa.registry import SOLVERS
    return [(solver, kind) for solver in solvers for kind in objectives
            if SOLVERS.get(solver).can_use(kind)]


def _predicted_segm(runner, weights: List[float]) -> float:
    """Test-split segm mAP (x 100) of the whole detector at group weights w."""
    prompt = runner.model.dense_prompt
    saved = prompt.get_group_weights()
    prompt.set_group_weights(weights)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' summary
            return 100 * float(runner.test().get('coco/segm_mAP', 0.0))
    finally:
        prompt.set_group_weights(saved)


def transfer(runner, loop, runs: Dict[str, dict], splits: Dict[str, dict],
             predicted: bool) -> dict:
    """Every run's best rho and the identity on each split of ``splits``
    (name -> dataset config, read with D_val's pipeline): f of each objective
    the runs used, and segm mAP x 100 with the true boxes; with
    ``predicted``, the test split's segm mAP of the whole detector too."""
    points = {'identity': [1.0] * loop.detector.dense_prompt.num_groups}
    points.update({key: run['best'] for key, run in runs.items()})
    kinds = sorted({run['objective'] for run in runs.values()} - {'segm_map'})
    out = {}
    for name, dataset in splits.items():
        base = loop.build_objective(dataset=dataset, source=f'split {name!r}')
        base.prepare()
        segm = base.using('segm_map')
        cache: Dict[tuple, dict] = {}
        for key, weights in points.items():
            if tuple(weights) not in cache:
                cache[tuple(weights)] = dict(
                    segm=100 * segm.segm_map(weights),
                    f={kind: base.using(kind)(weights) for kind in kinds})
            out.setdefault(name, {})[key] = cache[tuple(weights)]
        base.free()
    if predicted:
        cache = {}
        for key, weights in points.items():
            if tuple(weights) not in cache:
                cache[tuple(weights)] = _predicted_segm(runner, weights)
            out.setdefault('test_predicted', {})[key] = dict(segm=cache[tuple(weights)])
    return out


def compare_checkpoint(config: str, checkpoint: str, *, solvers: List[str],
                       objectives: List[str], budget: int, corr_points: int, seed: int,
                       work_dir: str, data_root: Optional[str], cfg_options: dict,
                       test: bool = False, fresh: Optional[str] = None,
                       threads: Optional[int] = None) -> dict:
    """Every solver x objective on one checkpoint, and with ``test`` or
    ``fresh`` the transfer probe; the result is also written to
    ``<work_dir>/<checkpoint name>.json``."""
    import torch
    from scipy.stats import spearmanr

    from bipa.apis import build_runner
    from bipa.registry import SOLVERS
    if threads:
        torch.set_num_threads(threads)
    name = checkpoint_name(checkpoint)
    runner = build_runner(config, work_dir=osp.join(work_dir, name), data_root=data_root,
                          cfg_options=dict(cfg_options, log_level='WARNING'))
    loop = runner.build_train_loop(runner.cfg.train_cfg)
    runner.load_checkpoint(checkpoint, map_location='cpu')  # a lean one completed
    prompt = loop.detector.dense_prompt
    base = loop.build_objective()
    base.prepare()
    fs = {kind: base.using(kind) for kind in objectives}
    identity = [1.0] * prompt.num_groups
    warm = [prompt.get_group_weights().tolist(), identity]
    segm = base.using('segm_map')
    segm_cache: Dict[tuple, float] = {}

    def segm_at(weights):
        key = tuple(weights)
        if key not in segm_cache:
            segm_cache[key] = 100 * segm.segm_map(list(weights))
        return segm_cache[key]

    f_identity = {kind: f(identity) for kind, f in fs.items()}
    out = dict(checkpoint=checkpoint, name=name, f_identity=f_identity,
               segm_identity=segm_at(identity), runs={})
    for solver, kind in _runs(solvers, objectives):
        trace = []
        start = time.perf_counter()

        def on_trial(round_idx, trial, trace=trace, start=start):
            trace.append(dict(seconds=time.perf_counter() - start, value=trial.value,
                              weights=[trial.params[k] for k in sorted(trial.params)]))

        search = _solver_cfg(solver, loop, seed).build(
            num_groups=prompt.num_groups, interval=prompt.search_interval,
            storage=optuna.storages.InMemoryStorage(), on_trial=on_trial)
        best, value = search.run_round(1, budget, fs[kind], warm_start=warm)
        seconds = time.perf_counter() - start
        best_so_far = np.minimum.accumulate(
            [t['value'] if t['value'] is not None else np.inf for t in trace])
        out['runs'][f'{solver}|{kind}'] = dict(
            solver=solver, objective=kind, seconds=seconds, best=best, best_f=value,
            ratio=(best_so_far / f_identity[kind]).tolist(),
            segm_best=segm_at(best), trials=trace)
        print(f'[search_compare] {name} {solver:8s} {kind:8s} f(best)/f(identity) '
              f'{value / f_identity[kind]:.4f}  segm {segm_at(best):.2f} (identity '
              f'{out["segm_identity"]:.2f})  {seconds:.1f} s', flush=True)
    # f against segm mAP: over the points the solvers that spread over B tried
    # under bce, and over the points of those that walk from the warm start
    out['correlation'] = {}
    for scope in ('global', 'local'):
        points = []
        for key, run in out['runs'].items():
            if SOLVERS.get(run['solver']).explores == scope and (
                    scope == 'local' or run['objective'] == 'bce'):
                points += [t['weights'] for t in run['trials']
                           if t['value'] is not None and t['weights'] not in points]
        points = points[:corr_points]
        if len(points) < 3:
            continue
        maps = [segm_at(p) for p in points]
        corr = out['correlation'][scope] = dict(points=len(points), segm=maps, f={}, spearman={})
        for kind, f in fs.items():
            if kind == 'segm_map':  # 1 - that mAP itself
                continue
            values = [f(p) for p in points]
            corr['f'][kind] = values
            # undefined (None) when f or the mAP is the same at every point
            constant = len(set(values)) < 2 or len(set(maps)) < 2
            corr['spearman'][kind] = None if constant else float(
                spearmanr(values, maps).statistic)
    base.free()
    splits = {}
    if test:
        splits['test'] = runner.cfg.test_dataloader.dataset
    if fresh:
        splits['fresh'] = dict(runner.cfg.test_dataloader.dataset, data_root=fresh)
    if splits:
        start = time.perf_counter()
        out['transfer'] = transfer(runner, loop, out['runs'], splits, predicted=test)
        print(f'[search_compare] {name} transfer probe on {", ".join(splits)}: '
              f'{time.perf_counter() - start:.1f} s', flush=True)
    with open(osp.join(work_dir, f'{name}.json'), 'w') as fh:
        json.dump(out, fh)
    return out


def _mean_std(values: List[float], fmt: str = '{:.3f}') -> str:
    if not values:
        return '-'
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f'{fmt.format(float(np.mean(values)))} ± {fmt.replace("+", "").format(std)}'


def summarise(results: List[dict], budget: int) -> str:
    """The markdown table: per solver x objective, over the checkpoints."""
    keys = list(results[0]['runs'])
    lines = [f'{len(results)} checkpoint(s): {", ".join(r["name"] for r in results)}; '
             f'{budget} evaluations of f per round; mean ± sample std over the checkpoints.',
             '', '| solver | objective | f(best) / f(identity) | moved off the identity | '
             'D_val segm at best − at identity (x100) | seconds per round |',
             '|---|---|---|---|---|---|']
    for key in keys:
        runs = [r['runs'][key] for r in results]
        moved = sum(run['best'] != [1.0] * len(run['best']) for run in runs)
        deltas = [run['segm_best'] - r['segm_identity'] for run, r in zip(runs, results)]
        lines.append(f'| {runs[0]["solver"]} | {runs[0]["objective"]} | '
                     f'{_mean_std([run["ratio"][-1] for run in runs], "{:.4f}")} | '
                     f'{moved}/{len(runs)} | {_mean_std(deltas, "{:+.2f}")} | '
                     f'{_mean_std([run["seconds"] for run in runs], "{:.1f}")} |')
    for scope, what in (('global', 'the points the solvers that spread over B tried under bce'),
                        ('local', 'the points the solvers that walk from the warm start '
                                  'visited, near it')):
        corr = [r['correlation'][scope] for r in results if scope in r.get('correlation', {})]
        if not corr:
            continue
        lines += ['', f'Spearman rank correlation of f with D_val segm mAP (true boxes) over '
                  f'{what} (up to {max(c["points"] for c in corr)} per checkpoint; -1: f '
                  'orders them as the mAP does):', '', '| objective | Spearman |', '|---|---|']
        for kind in corr[0]['spearman']:
            values = [c['spearman'][kind] for c in corr if c['spearman'][kind] is not None]
            undefined = len(corr) - len(values)
            lines.append(f'| {kind} | {_mean_std(values, "{:+.2f}")}'
                         + (f' ({undefined} undefined: constant mAP or f)' if undefined else '')
                         + ' |')
    return '\n'.join(lines) + '\n'


def _delta(values: List[float]) -> str:
    """Mean ± std of ``values``, and how many are above / below 0."""
    up, down = sum(v > 0 for v in values), sum(v < 0 for v in values)
    return f'{_mean_std(values, "{:+.2f}")} ({up}↑ {down}↓)'


def _ratio(values: List[float]) -> str:
    """Mean ± std of f ratios, and how many lowered f."""
    return f'{_mean_std(values, "{:.4f}")} ({sum(v < 1 for v in values)}↓)'


def _transfer_cells(result: dict, key: str) -> Dict[str, float]:
    """One run's deltas against the identity: f(best) / f(identity) of its
    objective and segm mAP (x 100) on each split of the probe."""
    run, transfer = result['runs'][key], result.get('transfer', {})
    kind, cells = run['objective'], {}
    splits = dict(D_val=dict(identity=dict(segm=result['segm_identity']),
                             best=dict(segm=run['segm_best'])),
                  **{name: dict(identity=points['identity'], best=points[key])
                     for name, points in transfer.items()})
    for name, point in splits.items():
        cells[f'{name} segm'] = point['best']['segm'] - point['identity']['segm']
        if kind == 'segm_map':
            f = {k: 1 - p['segm'] / 100 for k, p in point.items()}
        elif 'f' in point['best']:
            f = {k: p['f'][kind] for k, p in point.items()}
        elif name == 'D_val':
            f = dict(identity=result['f_identity'][kind], best=run['best_f'])
        else:
            continue
        cells[f'{name} f'] = f['best'] / f['identity']
    return cells


def summarise_transfer(results: List[dict]) -> str:
    """The probe's table (per solver x objective, over the checkpoints) and
    its rows per checkpoint."""
    if not any('transfer' in r for r in results):
        return ''
    keys = list(results[0]['runs'])
    cells = {key: [_transfer_cells(r, key) for r in results] for key in keys}
    columns = list(cells[keys[0]][0])
    lines = ['', 'Transfer: the chosen rho against the identity at the same w, f(best) / '
             'f(identity) of the run\'s objective and segm mAP x 100 (true boxes; '
             '`test_predicted`: the whole detector) on each split; mean ± std over the '
             'checkpoints (how many up ↑ / down ↓):', '',
             '| solver | objective | moved | ' + ' | '.join(columns) + ' |',
             '|---|---|---|' + '---|' * len(columns)]
    for key in keys:
        run = results[0]['runs'][key]
        moved = sum(r['runs'][key]['best'] != [1.0] * len(run['best']) for r in results)
        row = [_ratio([c[col] for c in cells[key]]) if col.endswith(' f')
               else _delta([c[col] for c in cells[key]]) for col in columns]
        lines.append(f'| {run["solver"]} | {run["objective"]} | {moved}/{len(results)} | '
                     + ' | '.join(row) + ' |')
    lines += ['', 'Per checkpoint (segm deltas x 100; f ratios):', '',
              '| checkpoint | solver | objective | ' + ' | '.join(columns) + ' |',
              '|---|---|---|' + '---|' * len(columns)]
    for i, result in enumerate(results):
        for key in keys:
            run = result['runs'][key]
            row = [f'{cells[key][i][col]:.4f}' if col.endswith(' f')
                   else f'{cells[key][i][col]:+.2f}' for col in columns]
            lines.append(f'| {result["name"]} | {run["solver"]} | {run["objective"]} | '
                         + ' | '.join(row) + ' |')
    return '\n'.join(lines) + '\n'


def plot(results: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    objectives = list(dict.fromkeys(run['objective'] for run in results[0]['runs'].values()))
    fig, axes = plt.subplots(1, len(objectives), figsize=(4 * len(objectives), 3.4),
                             squeeze=False)
    for ax, kind in zip(axes[0], objectives):
        for key, run in results[0]['runs'].items():
            if run['objective'] != kind:
                continue
            curves = np.array([r['runs'][key]['ratio'] for r in results])
            ax.plot(np.arange(1, curves.shape[1] + 1), curves.mean(0), marker='.',
                    label=run['solver'])
        ax.axhline(1.0, color='grey', lw=0.8, ls='--')
        ax.set_title(f'f = {kind}')
        ax.set_xlabel('evaluations of f')
        ax.set_ylabel('best f so far / f(identity)')
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    from mmengine.config import DictAction

    from bipa.engine.prompt_objective import OBJECTIVES
    from bipa.registry import SOLVERS
    solvers = sorted(SOLVERS.module_dict)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoints', nargs='+')
    parser.add_argument('--solvers', nargs='+', choices=solvers, default=solvers,
                        help='registered solvers (default: all)')
    parser.add_argument('--objectives', nargs='+', choices=OBJECTIVES, default=list(OBJECTIVES))
    parser.add_argument('--budget', type=int, default=12, help='evaluations of f per round')
    parser.add_argument('--corr-points', type=int, default=48)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--jobs', type=int, default=1, help='checkpoints in parallel '
                        '(processes of one thread each when above 1)')
    parser.add_argument('--test', action='store_true', help='the transfer probe on the '
                        "config's test split (true and predicted boxes)")
    parser.add_argument('--fresh', default=None, metavar='DATA_ROOT',
                        help='the transfer probe on the test split of this data root')
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'search_compare'))
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    start = time.time()
    results, todo = {}, []
    for path in args.checkpoints:
        done = osp.join(args.work_dir, f'{checkpoint_name(path)}.json')
        if osp.exists(done):
            with open(done) as fh:
                results[path] = json.load(fh)
        else:
            todo.append(path)
    common = dict(solvers=args.solvers, objectives=args.objectives, budget=args.budget,
                  corr_points=args.corr_points, seed=args.seed, work_dir=args.work_dir,
                  data_root=args.data_root, cfg_options=args.cfg_options, test=args.test,
                  fresh=args.fresh)
    if args.jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {path: pool.submit(compare_checkpoint, args.config, path, threads=1,
                                         **common) for path in todo}
            results.update({path: f.result() for path, f in futures.items()})
    else:
        for path in todo:
            results[path] = compare_checkpoint(args.config, path, **common)
    ordered = [results[p] for p in args.checkpoints]
    text = summarise(ordered, args.budget) + summarise_transfer(ordered)
    text += f'\nWall time of this command: {(time.time() - start) / 60:.1f} min.\n'
    with open(osp.join(args.work_dir, 'results.md'), 'w') as fh:
        fh.write(text)
    plot(ordered, osp.join(args.work_dir, 'results.png'))
    print(text)
    return ordered


if __name__ == '__main__':
    from bipa.apis import run_cli
    raise SystemExit(run_cli(main))
