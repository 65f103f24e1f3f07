"""Compare the upper level's solvers and objectives on the same checkpoints.

    python tools/analysis/search_compare.py CONFIG CKPT [CKPT ...]
        [--solvers tpe gp cmaes random gradient] [--objectives bce bce+dice dice soft_iou]
        [--budget 12] [--corr-points 24] [--seed 0] [--jobs N]
        [--work-dir work_dirs/search_compare] [--data-root DIR] [--cfg-options KEY=VALUE ...]

Each checkpoint (w fixed, e.g. a run's pre-search ``iter_<r * K_a>.pth``) is
one round's problem: every solver (an Optuna sampler, or the gradient search)
x every objective gets ``--budget`` evaluations of that f on the run's D_val,
warm-started as the loop does (the checkpoint's rho, the identity). Per run it
records best f so far / f(identity) after each evaluation, the wall time, and
the D_val segm mAP (COCO, mmdet's CocoMetric; the true boxes as detections,
so the mask branch alone) at the best rho and at the identity. It measures
each objective's Spearman rank correlation with that segm mAP (f is
minimised: -1 means f orders the prompts exactly as the mAP does) over two
sets of points, up to ``--corr-points`` each: ``global``, those the ``tpe``
and ``random`` solvers tried under ``bce`` (spread over B), and ``local``,
those the gradient search visited (near its start).

Writes ``<work-dir>/<checkpoint name>.json`` per checkpoint (a restarted
command skips those present), ``results.md`` and ``results.png`` (best f so
far / f(identity) against evaluations, per objective, mean over checkpoints).
"""
import argparse
import contextlib
import copy
import io
import json
import os
import os.path as osp
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional

import numpy as np

SOLVERS = ('tpe', 'gp', 'cmaes', 'random', 'gradient')
CORR_SOLVERS = ('tpe', 'random')


def checkpoint_name(path: str) -> str:
    """``<run folder>_<file stem>``, e.g. ``seed0_iter_800``."""
    return (f'{osp.basename(osp.dirname(osp.abspath(path)))}_'
            f'{osp.splitext(osp.basename(path))[0]}')


class DvalSegm:
    """D_val segm mAP (x 100) of the model at group weights w, the true boxes as
    detections (``test_cfg.oracle_boxes``), scored by mmdet's CocoMetric on
    D_val's images only."""

    def __init__(self, runner, loop) -> None:
        from mmdet.registry import METRICS
        from mmengine.evaluator import Evaluator
        from mmengine.runner import Runner
        cfg = copy.deepcopy(loop.val_dataset_cfg)
        inner = cfg['dataset'] if cfg.get('type') == 'HoldoutSplit' else cfg
        # the test pipeline (GT in original pixels, as oracle_boxes and the metric read it)
        loader = runner.cfg.get('val_dataloader') or runner.cfg.get('test_dataloader')
        inner['pipeline'] = copy.deepcopy(loader['dataset']['pipeline'])
        self.loader = Runner.build_dataloader(dict(
            batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=cfg))
        dataset = self.loader.dataset
        self.img_ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
        self.metric = METRICS.build(dict(
            type='CocoMetric', metric='segm',
            ann_file=osp.join(inner.get('data_root') or '', inner['ann_file'])))
        self.evaluator = Evaluator([self.metric])
        self.evaluator.dataset_meta = dataset.metainfo
        self.runner = runner

    def __call__(self, weights: List[float]) -> float:
        import torch
        model = self.runner.model
        prompt, test_cfg = model.dense_prompt, model.test_cfg
        saved, oracle = prompt.get_group_weights(), test_cfg.get('oracle_boxes', False)
        prompt.set_group_weights(weights)
        test_cfg['oracle_boxes'] = True
        model.eval()
        try:
            with torch.no_grad():
                for data in self.loader:
                    self.evaluator.process(data_samples=model.test_step(data), data_batch=data)
            self.metric.img_ids = self.img_ids  # COCOeval over D_val's images only
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' summary
                result = self.evaluator.evaluate(len(self.loader.dataset))
        finally:
            prompt.set_group_weights(saved)
            test_cfg['oracle_boxes'] = oracle
        return 100 * float(result['coco/segm_mAP'])


def _search(solver: str, loop, seed: int, on_trial):
    """The run's search config with ``solver`` (its sampler keywords only for
    its own sampler), in memory."""
    import dataclasses

    import optuna
    cfg = loop.search_cfg
    sampler = cfg.sampler if solver == 'gradient' else solver
    cfg = dataclasses.replace(
        cfg, method='gradient' if solver == 'gradient' else 'optuna', sampler=sampler,
        sampler_kwargs=cfg.sampler_kwargs if sampler == cfg.sampler else {},
        study_name=solver, seed=seed)
    prompt = loop.detector.dense_prompt
    return cfg.build(num_groups=prompt.num_groups, interval=prompt.search_interval,
                     storage=optuna.storages.InMemoryStorage(), on_trial=on_trial)


def compare_checkpoint(config: str, checkpoint: str, *, solvers: List[str],
                       objectives: List[str], budget: int, corr_points: int, seed: int,
                       work_dir: str, data_root: Optional[str], cfg_options: dict,
                       threads: Optional[int] = None) -> dict:
    """Every solver x objective on one checkpoint; the result is also written
    to ``<work_dir>/<checkpoint name>.json``."""
    import torch
    from mmengine.runner import load_checkpoint
    from scipy.stats import spearmanr

    from bipa.apis import build_runner
    if threads:
        torch.set_num_threads(threads)
    name = checkpoint_name(checkpoint)
    runner = build_runner(config, work_dir=osp.join(work_dir, name), data_root=data_root,
                          cfg_options=dict(cfg_options, log_level='WARNING'))
    loop = runner.build_train_loop(runner.cfg.train_cfg)
    load_checkpoint(runner.model, checkpoint, map_location='cpu', logger='silent')
    prompt = loop.detector.dense_prompt
    base = loop.build_objective()
    base.prepare()
    fs = {kind: base.using(kind) for kind in objectives}
    identity = [1.0] * prompt.num_groups
    warm = [prompt.get_group_weights().tolist(), identity]
    segm = DvalSegm(runner, loop)
    segm_cache: Dict[tuple, float] = {}

    def segm_at(weights):
        key = tuple(weights)
        if key not in segm_cache:
            segm_cache[key] = segm(list(weights))
        return segm_cache[key]

    f_identity = {kind: f(identity) for kind, f in fs.items()}
    out = dict(checkpoint=checkpoint, name=name, f_identity=f_identity,
               segm_identity=segm_at(identity), runs={})
    for solver in solvers:
        for kind in objectives:
            trace = []
            start = time.perf_counter()

            def on_trial(round_idx, trial, trace=trace, start=start):
                trace.append(dict(seconds=time.perf_counter() - start, value=trial.value,
                                  weights=[trial.params[k] for k in sorted(trial.params)]))

            search = _search(solver, loop, seed, on_trial)
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
    # f against segm mAP: over the points the sampling solvers tried under bce
    # (spread over B) and over the gradient search's points (near its start)
    out['correlation'] = {}
    for scope, solvers_of in (('global', CORR_SOLVERS), ('local', ('gradient', ))):
        points = []
        for key, run in out['runs'].items():
            if run['solver'] in solvers_of and (scope == 'local' or run['objective'] == 'bce'):
                points += [t['weights'] for t in run['trials']
                           if t['value'] is not None and t['weights'] not in points]
        points = points[:corr_points]
        if len(points) < 3:
            continue
        maps = [segm_at(p) for p in points]
        corr = out['correlation'][scope] = dict(points=len(points), segm=maps, f={}, spearman={})
        for kind, f in fs.items():
            values = [f(p) for p in points]
            corr['f'][kind] = values
            # undefined (None) when f or the mAP is the same at every point
            constant = len(set(values)) < 2 or len(set(maps)) < 2
            corr['spearman'][kind] = None if constant else float(
                spearmanr(values, maps).statistic)
    base.free()
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
    for scope, what in (('global', f'the points {"/".join(CORR_SOLVERS)} tried under bce, '
                                    'spread over B'),
                        ('local', 'the points the gradient search visited, near its start')):
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoints', nargs='+')
    parser.add_argument('--solvers', nargs='+', choices=SOLVERS, default=list(SOLVERS))
    parser.add_argument('--objectives', nargs='+', choices=OBJECTIVES, default=list(OBJECTIVES))
    parser.add_argument('--budget', type=int, default=12, help='evaluations of f per round')
    parser.add_argument('--corr-points', type=int, default=48)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--jobs', type=int, default=1, help='checkpoints in parallel '
                        '(processes of one thread each when above 1)')
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
                  data_root=args.data_root, cfg_options=args.cfg_options)
    if args.jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {path: pool.submit(compare_checkpoint, args.config, path, threads=1,
                                         **common) for path in todo}
            results.update({path: f.result() for path, f in futures.items()})
    else:
        for path in todo:
            results[path] = compare_checkpoint(args.config, path, **common)
    ordered = [results[p] for p in args.checkpoints]
    text = summarise(ordered, args.budget)
    text += f'\nWall time of this command: {(time.time() - start) / 60:.1f} min.\n'
    with open(osp.join(args.work_dir, 'results.md'), 'w') as fh:
        fh.write(text)
    plot(ordered, osp.join(args.work_dir, 'results.png'))
    print(text)
    return ordered


if __name__ == '__main__':
    from bipa.utils.cli import run_cli
    raise SystemExit(run_cli(main))
