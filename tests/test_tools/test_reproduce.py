"""tools/analysis/reproduce.py: a tiny sweep (2 rows x 2 seeds) trained,
tested, aggregated; a second call skips the finished runs."""
import json
import os.path as osp

import numpy as np

from tests.conftest import load_tool


def test_sweep_runs_once_and_aggregates(e2e_data, tmp_path, capsys):
    reproduce = load_tool('analysis/reproduce')
    work = tmp_path / 'reproduce'
    argv = ['--config', e2e_data['config'], '--tables', '3', '--rows', 'bilevel', 'frozen',
            '--seeds', '0', '1', '--jobs', '1', '--work-dir', str(work),
            '--cfg-options', 'model.test_cfg.rcnn.score_thr=0.0', 'log_level=WARNING',
            'train_cfg.T=1', 'train_cfg.K_a=1', 'train_cfg.K_b=2', 'train_cfg.K_c=1']
    rows = reproduce.main(argv)
    assert '4 run(s) to do, 0 finished' in capsys.readouterr().out

    results = {(r, s): json.loads((work / r / f'seed{s}' / 'result.json').read_text())
               for r in ('bilevel', 'frozen') for s in (0, 1)}
    # each seed is its own run: the seed reached the config and the search
    assert results['bilevel', 0]['metrics'] != results['bilevel', 1]['metrics'] or \
        results['bilevel', 0]['search'] != results['bilevel', 1]['search']
    for s in (0, 1):
        search = results['bilevel', s]['search']
        assert [r['round'] for r in search] == [1]  # T=1
        for r in search:  # the identity prompt is a trial of every round
            assert r['f_identity'] is not None and r['f_best'] <= r['f_identity']
            assert len(r['rho']) == 16 and all(1.0 <= w <= 3.0 for w in r['rho'])
        assert results['frozen', s]['search'] == []

    by_label = {r['label']: r for r in rows}
    assert set(by_label) == {'frozen', 'bilevel'} and all(r['seeds'] == 2 for r in rows)
    segm = [results['bilevel', s]['metrics']['coco/segm_mAP'] for s in (0, 1)]
    assert by_label['bilevel']['segm'] == segm
    table = (work / 'results.md').read_text()
    mean, std = 100 * np.mean(segm), 100 * np.std(segm, ddof=1)
    assert f'| bilevel | 32.1 | {mean:.1f} +- {std:.1f} |' in table
    assert '| frozen | 30.9 |' in table
    assert (work / 'results.png').stat().st_size > 0

    mtimes = {k: (work / k[0] / f'seed{k[1]}' / 'result.json').stat().st_mtime_ns
              for k in results}
    again = reproduce.main(argv)
    assert '0 run(s) to do, 4 finished' in capsys.readouterr().out
    assert again == rows
    assert all((work / k[0] / f'seed{k[1]}' / 'result.json').stat().st_mtime_ns == t
               for k, t in mtimes.items())


def test_search_rows_are_valid_train_cfgs():
    """Every upper-level row sets keys the loop accepts; the table needs --rows."""
    import pytest

    from bipa.engine import BilevelConfig
    reproduce = load_tool('analysis/reproduce')
    rows = [r for r, (table, _, _) in reproduce.ROWS.items() if table == 'search']
    # every registered solver x every f it can use, at two intervals, but TPE/BCE at [1, 3]
    # (tests may register solvers of their own)
    from bipa.engine.prompt_objective import DIFFERENTIABLE, OBJECTIVES
    from bipa.registry import SOLVERS
    pairs = sum(len(DIFFERENTIABLE if SOLVERS.get(s).needs_gradient else OBJECTIVES)
                for s in SOLVERS.module_dict)
    assert len(rows) == 2 * pairs - 1 and 'search_gradient_soft_iou_B0.5-2' in rows
    assert 'search_gp_segm_map' in rows and 'search_gradient_segm_map' not in rows
    for row in rows:
        options = reproduce.job_options(row, 3, None)
        search = {k.split('.')[-1]: v for k, v in options.items()
                  if k.startswith('train_cfg.search.')}
        cfg = BilevelConfig.from_cfg(dict(search=search))
        assert row.startswith(f'search_{cfg.search.solver}_{cfg.search.objective}')
        assert cfg.search.seed == 3
    with pytest.raises(SystemExit):
        reproduce.parse_args(['--tables', 'search'])


def test_holdout_seed_follows_the_run_seed_unless_the_user_sets_it():
    """Each seed validates on its own D_val; ``--cfg-options
    train_cfg.holdout.seed=0`` keeps one for all; with val_split none is set."""
    from mmengine.config import Config
    reproduce = load_tool('analysis/reproduce')
    config = reproduce.DEFAULT_CONFIG

    def merged(options):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(options)
        return cfg.train_cfg.holdout

    for seed in (1, 2):
        options = reproduce.job_options('bilevel', seed, None, config)
        assert options['train_cfg.holdout.seed'] == options['randomness.seed'] == seed
        assert merged(options) == dict(fraction=0.1, seed=seed)
    user = reproduce.parse_args(['--cfg-options', 'train_cfg.holdout.seed=0']).cfg_options
    options = reproduce.job_options('bilevel', 2, user, config)
    assert options['train_cfg.holdout.seed'] == 0 and options['randomness.seed'] == 2
    assert merged(options) == dict(fraction=0.1, seed=0)
    val_split = {'train_cfg.holdout': None, 'train_cfg.val_split': 'val_dataloader'}
    assert 'train_cfg.holdout.seed' not in reproduce.job_options('bilevel', 2, val_split, config)
    usis10k = osp.join(reproduce.ROOT, 'configs', 'bipa_usis10k.py')  # D_val: its val split
    assert 'train_cfg.holdout.seed' not in reproduce.job_options('bilevel', 2, None, usis10k)
