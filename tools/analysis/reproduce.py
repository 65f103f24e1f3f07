"""Reproduce the paper's ablations (Tables 3-5, FAI vs sum) at small scale over seeds.

    python tools/analysis/reproduce.py [--tables 3 4 5 fai mask search] [--rows ROW ...]
        [--seeds 0 1 2] [--jobs N] [--work-dir work_dirs/reproduce]
        [--config configs/bipa_demo_synthetic.py] [--data-root DIR]
        [--cfg-options KEY=VALUE ...]

Every row of the chosen tables is trained and tested once per seed, from the
config's SAM checkpoint (the demo's: the tiny SAM pre-trained in air) on its
underwater data. A run is ``<work-dir>/<row>/seed<k>/``; its
``result.json`` (COCO metrics of the test split, wall time and, for bilevel
runs, f at the identity prompt, the best f and the rho found per search
round) marks it finished, so a restarted command skips it; an interrupted run
resumes from its last checkpoint. The seed ``k`` seeds the run, its search
and, where the config holds D_val out of the training set
(``train_cfg.holdout``, not ``val_split``), the holdout: each seed validates
on its own D_val (``--cfg-options train_cfg.holdout.seed=0`` keeps one D_val
for every seed). Runs go in parallel processes, one torch thread each, up to
``--jobs`` (default: the CPU count, 1 on a GPU). The table
(``results.md``: mean +- std over seeds of segm/bbox mAP x 100, the paper's
number beside it, and the segm mAP of the same checkpoint given the true
boxes as detections: the mask branch alone) and a plot (``results.png``) are written at the end.
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Dict, List, Optional

import numpy as np

from bipa.engine.prompt_objective import OBJECTIVES
from bipa.registry import SOLVERS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'bipa_demo_synthetic.py')
HEAD = 'model.roi_head.mask_head'
DENSE = f'{HEAD}.dense_prompt'

# row -> (table, config overrides, paper's mAP: UIIS for Tables 3-5, USIS10K for FAI)
ROWS: Dict[str, tuple] = {
    'frozen': ('3', {f'{DENSE}.mode': 'frozen'}, 30.9),
    'naive': ('3', {f'{DENSE}.mode': 'naive'}, 31.3),
    'bilevel': ('3', {}, 32.1),
    'adaptation_only': ('4', {'train_cfg.adaptation_only': True}, 29.8),
    'groups_8': ('5', {f'{DENSE}.num_groups': 8}, 31.5),
    'groups_32': ('5', {f'{DENSE}.num_groups': 32}, 30.8),
    'interval_0.5-2': ('5', {f'{DENSE}.search_interval': (0.5, 2.0)}, None),
    'fusion_sum': ('fai', {'model.neck.fusion': 'sum'}, 43.5),
    # the mask branch (ours, beyond the paper): each fix switched off, all
    # three off, and the authors' prompt generator
    'no_box_anchor': ('mask', {f'{HEAD}.anchor': 'none'}, None),
    'random_adapters': ('mask', {'model.backbone.adapter_init': 'random'}, None),
    'no_dice': ('mask', {f'{HEAD}.loss_dice': None}, None),
    'paper_mask_branch': ('mask', {f'{HEAD}.anchor': 'none', f'{HEAD}.loss_dice': None,
                                   'model.backbone.adapter_init': 'random'}, None),
    'authors_generator': ('mask', {f'{HEAD}.prompt_generator.arch': 'authors'}, None),
}
# the upper level (ours, beyond the paper; tools/analysis/search_compare.py
# chooses among them): search_<solver>_<objective>[_B0.5-2] for every solver
# registered in bipa.registry.SOLVERS and every f it can use; the paper's
# solver and f (TPE, BCE) are the bilevel row
for _solver in SOLVERS.module_dict:
    for _objective in OBJECTIVES:
        if not SOLVERS.get(_solver).can_use(_objective):
            continue
        _options = {'train_cfg.search.solver': _solver, 'train_cfg.search.objective': _objective}
        _name = f'search_{_solver}_{_objective}'
        if _name != 'search_tpe_bce':
            ROWS[_name] = ('search', _options, None)
        ROWS[f'{_name}_B0.5-2'] = ('search', dict(
            _options, **{f'{DENSE}.search_interval': (0.5, 2.0)}), None)
# rows that are the bilevel run under another name in a table
ALIASES = {'4': [('+ fine-tuning', 'bilevel', 32.1)],
           'mask': [('A + B + C (= bilevel)', 'bilevel', 32.1)],
           '5': [('groups_16 = interval_1-3', 'bilevel', 32.1)],
           'fai': [('fusion_fai', 'bilevel', 45.2)],
           'search': [('search_tpe_bce (= bilevel)', 'bilevel', 32.1)]}
TABLES = {
    '3': 'Table 3: dense prompt frozen / naive / bilevel',
    '4': 'Table 4: adaptation phase only vs + fine-tuning',
    '5': 'Table 5: number of groups N_g and interval B',
    'fai': 'FAI vs summation fusion (paper: USIS10K)',
    'mask': 'The mask branch: box anchor (A), identity adapters (B), Dice (C)',
    'search': 'The upper level: solver, objective f and interval B (rows run only)',
}


def rows_of(tables: List[str], only: Optional[List[str]] = None) -> List[str]:
    """The runs the tables need (bilevel first: every table compares with it),
    or those of ``only`` among them."""
    names = ['bilevel']
    for name, (table, _, _) in ROWS.items():
        if table in tables and name not in names:
            names.append(name)
    return [n for n in names if n in only] if only else names


def run_dir(work_dir: str, row: str, seed: int) -> str:
    return osp.join(work_dir, row, f'seed{seed}')


def job_options(row: str, seed: int, cfg_options: Optional[dict],
                config: Optional[str] = None) -> dict:
    """One run's overrides: the user's ``cfg_options``, the row's over them,
    the seed of the run and of its search and, where ``config`` with those
    overrides holds D_val out of the training set, of the holdout
    (``train_cfg.holdout.seed``), unless the user sets that."""
    options = dict(cfg_options or {})
    options.update(ROWS[row][1] if row in ROWS else {})
    options.update({'randomness.seed': seed, 'train_cfg.search.seed': seed})
    if config is not None and _holds_out(config, options):
        options = {'train_cfg.holdout.seed': seed, **options}  # the user's value wins
    return options


def _holds_out(config: str, options: dict) -> bool:
    """Whether ``config`` with ``options`` holds D_val out of the training
    set (``train_cfg.holdout``; not with ``train_cfg.val_split``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    train_cfg = cfg.get('train_cfg') or {}
    return isinstance(train_cfg.get('holdout'), dict) and train_cfg.get('val_split') is None


def run_job(config: str, work_dir: str, row: str, seed: int, data_root: Optional[str],
            cfg_options: Optional[dict], threads: Optional[int] = 1,
            quiet: bool = False) -> dict:
    """Train and test one row for one seed; write and return its result.
    ``quiet`` sends the run's console output to ``console.log`` in its dir."""
    out_dir = run_dir(work_dir, row, seed)
    os.makedirs(out_dir, exist_ok=True)
    if not quiet:
        return _train_and_test(config, out_dir, row, seed, data_root, cfg_options, threads)
    with open(osp.join(out_dir, 'console.log'), 'a') as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return _train_and_test(config, out_dir, row, seed, data_root, cfg_options, threads)


def _train_and_test(config, out_dir, row, seed, data_root, cfg_options, threads) -> dict:
    import torch

    import bipa  # noqa: F401
    from bipa.apis import build_runner, summarize_rounds
    if threads:
        torch.set_num_threads(threads)
    start = time.time()
    runner = build_runner(config, work_dir=out_dir, data_root=data_root, resume=True,
                          cfg_options=job_options(row, seed, cfg_options, config))
    runner.train()
    metrics = {k: float(v) for k, v in runner.test().items() if k.startswith('coco/')}
    note = ''
    if not metrics:  # mmdet's CocoMetric returns nothing when nothing was predicted
        metrics = {'coco/bbox_mAP': 0.0, 'coco/segm_mAP': 0.0}
        note = 'no prediction on the test split: mAP 0'
        print(f'[reproduce] {row} seed {seed}: {note}', flush=True)
    # the mask branch alone: the same checkpoint with the true boxes as detections
    model = getattr(runner.model, 'module', runner.model)
    model.test_cfg['oracle_boxes'] = True
    oracle = {k: float(v) for k, v in runner.test().items() if k.startswith('coco/segm')}
    model.test_cfg['oracle_boxes'] = False
    db = osp.join(out_dir, 'prompt_search.db')
    result = dict(row=row, seed=seed, minutes=round((time.time() - start) / 60, 2),
                  metrics=metrics, oracle_boxes=oracle, note=note,
                  search=summarize_rounds(db) if osp.isfile(db) else [])
    tmp = osp.join(out_dir, 'result.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, osp.join(out_dir, 'result.json'))  # written whole or not at all
    return result


def load_result(work_dir: str, row: str, seed: int) -> Optional[dict]:
    path = osp.join(run_dir(work_dir, row, seed), 'result.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _mean_std(values: List[float]) -> str:
    if not values:
        return '-'
    v = 100 * np.asarray(values)
    return f'{v.mean():.1f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}'


def _search_cell(results: List[dict]) -> str:
    """Per round: mean f(identity) -> mean f(best), and how often identity won."""
    rounds = {}
    for r in results:
        for s in r['search']:
            rounds.setdefault(s['round'], []).append(s)
    cells = []
    for idx, items in sorted(rounds.items()):
        f_id = [s['f_identity'] for s in items if s['f_identity'] is not None]
        f_best = [s['f_best'] for s in items]
        won = sum(s['identity_best'] for s in items)
        f_id = f'{np.mean(f_id):.4f}' if f_id else 'n/a'
        cells.append(f'r{idx}: {f_id} -> {np.mean(f_best):.4f} (identity best {won}/{len(items)})')
    return '; '.join(cells) or '-'


def table_rows(tables: List[str], work_dir: str, seeds: List[int],
               only: Optional[List[str]] = None) -> List[dict]:
    """Aggregated rows (mean, std over the finished seeds) in table order."""
    out = []
    for table in tables:
        entries = [(name, name, ROWS[name][2]) for name in ROWS if ROWS[name][0] == table]
        if table == '3':
            entries = [(n, n, ROWS[n][2]) for n in ('frozen', 'naive', 'bilevel')]
        entries += ALIASES.get(table, [])
        for label, row, paper in entries:
            if only and row not in only:
                continue
            results = [r for r in (load_result(work_dir, row, s) for s in seeds) if r]
            if table == 'search' and not results:  # of its 39 rows, those run
                continue
            segm = [r['metrics']['coco/segm_mAP'] for r in results]
            bbox = [r['metrics']['coco/bbox_mAP'] for r in results]
            oracle = [r['oracle_boxes']['coco/segm_mAP'] for r in results
                      if r.get('oracle_boxes')]
            out.append(dict(table=table, label=label, row=row, paper=paper, seeds=len(results),
                            segm=segm, bbox=bbox, oracle=oracle,
                            minutes=sum(r['minutes'] for r in results),
                            search=_search_cell(results)))
    return out


def write_markdown(rows: List[dict], path: str, seeds: List[int], wall_minutes: float,
                   runs: int) -> str:
    lines = [f'Seeds {seeds}; segm and bbox mAP x 100 on the test split, mean +- std '
             f'(sample std) over the finished seeds; this command trained {runs} run(s) in '
             f'{wall_minutes:.1f} min (wall).', '']
    for table in dict.fromkeys(r['table'] for r in rows):
        lines += [f'**{TABLES[table]}**', '',
                  '| row | paper mAP | segm mAP | bbox mAP | segm mAP, true boxes | seeds | '
                  'minutes (all seeds) | search per round: f(identity) -> f(best) |',
                  '|---|---|---|---|---|---|---|---|']
        for r in (r for r in rows if r['table'] == table):
            paper = '-' if r['paper'] is None else f'{r["paper"]:.1f}'
            lines.append(f'| {r["label"]} | {paper} | {_mean_std(r["segm"])} | '
                         f'{_mean_std(r["bbox"])} | {_mean_std(r["oracle"])} | {r["seeds"]} | '
                         f'{r["minutes"]:.1f} | '
                         f'{r["search"]} |')
        lines.append('')
    text = '\n'.join(lines)
    with open(path, 'w') as f:
        f.write(text)
    return text


def plot(rows: List[dict], path: str) -> None:
    """One panel per table: segm and bbox mAP per row, mean +- std and each seed."""
    import textwrap

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tables = list(dict.fromkeys(r['table'] for r in rows))
    fig, axes = plt.subplots(1, len(tables), figsize=(3.6 * len(tables), 3.8), squeeze=False)
    for ax, table in zip(axes[0], tables):
        items = [r for r in rows if r['table'] == table]
        xs = np.arange(len(items))
        for offset, key, colour in ((-0.2, 'segm', 'tab:blue'), (0.2, 'bbox', 'tab:orange')):
            for x, r in zip(xs, items):
                values = 100 * np.asarray(r[key])
                if not len(values):
                    continue
                ax.bar(x + offset, values.mean(), width=0.4, color=colour, alpha=0.7,
                       yerr=values.std(ddof=1) if len(values) > 1 else 0, capsize=3,
                       label=f'{key} mAP' if x == 0 else None)
                ax.scatter(np.full(len(values), x + offset), values, s=8, color='k', zorder=3)
        ax.set_xticks(xs)
        ax.set_xticklabels([textwrap.fill(r['label'].replace('_', ' '), 12) for r in items],
                           fontsize=7)
        ax.set_title(textwrap.fill(TABLES[table], 40), fontsize=8)
        ax.set_ylabel('mAP x 100 (test split)')
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tables', nargs='+', default=['3', '4', '5', 'fai', 'mask'],
                        choices=list(TABLES))
    parser.add_argument('--rows', nargs='+', choices=list(ROWS), default=None,
                        help='only these rows of the tables')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--jobs', type=int, default=None,
                        help='parallel runs (default: the CPU count, 1 with a GPU)')
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'reproduce'))
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--data-root', default=None,
                        help="the config's data root for every split (default: the config's)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='overrides for every run, as in tools/train.py')
    args = parser.parse_args(argv)
    if 'search' in args.tables and not args.rows:
        parser.error("--tables search has a row per solver, objective and interval: "
                     "choose them with --rows (e.g. search_gradient_bce)")
    return args


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    start = time.time()
    import torch
    gpu = torch.cuda.is_available()
    jobs = args.jobs or (1 if gpu else (len(os.sched_getaffinity(0))
                                        if hasattr(os, 'sched_getaffinity') else os.cpu_count()))
    rows = rows_of(args.tables, args.rows)
    todo = [(row, seed) for seed in args.seeds for row in rows
            if load_result(args.work_dir, row, seed) is None]
    done = len(rows) * len(args.seeds) - len(todo)
    print(f'[reproduce] {len(todo)} run(s) to do, {done} finished, {jobs} at a time'
          + (' on the GPU' if gpu else ', one thread each')
          + ('' if jobs == 1 else f'; logs in {args.work_dir}/<row>/seed<k>/console.log'),
          flush=True)
    threads = None if gpu else 1
    job_args = [(args.config, args.work_dir, row, seed, args.data_root, args.cfg_options,
                 threads) for row, seed in todo]
    if jobs == 1:
        for a in job_args:
            r = run_job(*a)
            print(f'[reproduce] {r["row"]} seed {r["seed"]}: segm mAP '
                  f'{r["metrics"]["coco/segm_mAP"]:.3f} ({r["minutes"]:.1f} min)', flush=True)
    else:
        import multiprocessing
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context('spawn')) as pool:
            futures = {pool.submit(run_job, *a, quiet=True): a for a in job_args}
            for future in as_completed(futures):
                r = future.result()
                print(f'[reproduce] {r["row"]} seed {r["seed"]}: segm mAP '
                      f'{r["metrics"]["coco/segm_mAP"]:.3f} ({r["minutes"]:.1f} min)',
                      flush=True)
    rows = table_rows(args.tables, args.work_dir, args.seeds, args.rows)
    os.makedirs(args.work_dir, exist_ok=True)
    text = write_markdown(rows, osp.join(args.work_dir, 'results.md'), args.seeds,
                          (time.time() - start) / 60, len(todo))
    plot(rows, osp.join(args.work_dir, 'results.png'))
    print(text)
    print(f'[reproduce] table {osp.join(args.work_dir, "results.md")}, plot '
          f'{osp.join(args.work_dir, "results.png")}')
    return rows


if __name__ == '__main__':
    from bipa.apis import run_cli
    raise SystemExit(run_cli(main))
