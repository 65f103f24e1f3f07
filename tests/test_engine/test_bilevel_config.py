"""BilevelConfig: every train_cfg key of BilevelLoop, checked in one place."""
import dataclasses

import pytest

from bipa.engine import BilevelConfig, BilevelLoop, FinetuneConfig, SearchConfig
from bipa.utils import ConfigError


def test_defaults_and_nested_configs():
    cfg = BilevelConfig.from_cfg(dict(T=2, search=dict(solver='gp'), finetune=None))
    assert (cfg.T, cfg.K_a, cfg.K_b, cfg.K_c, cfg.unit) == (2, 30, 21, 7, 'epoch')
    assert cfg.holdout == dict(fraction=0.1, seed=0) and cfg.val_split is None
    assert cfg.search == SearchConfig(solver='gp') and cfg.finetune == FinetuneConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.T = 4


def test_the_paper_schedule_is_a_bilevel_config():
    from mmengine.config import Config

    from tests.conftest import ROOT
    train_cfg = Config.fromfile(str(ROOT / 'configs/_base_/schedules/bilevel_paper.py')).train_cfg
    BilevelLoop.check_cfg(train_cfg)
    cfg = BilevelConfig.from_cfg({k: v for k, v in train_cfg.items() if k != 'type'})
    assert cfg.finetune.param_scheduler[1]['milestones'] == [1, 6]


@pytest.mark.parametrize('train_cfg, match', [
    (dict(K_x=3), r"^train_cfg\.K_x: unknown key; train_cfg has unknown key\(s\) \['K_x'\] "
     r'and takes: T, K_a, K_b, K_c, unit, strategy,'),
    (dict(T=True), r'^train_cfg\.T must be a positive integer, got True$'),
    (dict(K_a=0), r'^train_cfg\.K_a must be a positive integer, got 0$'),
    (dict(K_b=False), r'^train_cfg\.K_b must be a non-negative integer, got False$'),
    (dict(K_c=1.5), r'^train_cfg\.K_c must be a non-negative integer, got 1\.5$'),
    (dict(unit='epochs'), r"^train_cfg\.unit must be one of \('iter', 'epoch'\), got 'epochs'"),
    (dict(strategy='joint'), r"^train_cfg\.strategy must be one of \('frozen', 'naive', "
     r"'bilevel'\) or None, got 'joint'"),
    (dict(adaptation_only=1), r'^train_cfg\.adaptation_only must be True or False, got 1'),
    (dict(val_interval=True), r'^train_cfg\.val_interval must be a positive integer'),
    (dict(holdout=0.1), r'^train_cfg\.holdout must be a dict'),
    (dict(val_split='val_dataloader'), r'both choose D_val'),
    (dict(search=dict(seed=True)), r'^train_cfg\.search\.seed must be a non-negative integer'),
    (dict(finetune=dict(lr=True)), r'^train_cfg\.finetune\.lr must be a positive number'),
    (dict(search=dict(solver='CMA')), r"^train_cfg\.search\.solver must be one of the "
     r"registered solvers \(.*'cmaes'.*'gradient'.*\), got 'CMA'$"),
    (dict(search=dict(objective='iou')), r"^train_cfg\.search\.objective must be one of "
     r"\('bce', 'bce\+dice', 'dice', 'soft_iou', 'segm_map'\)"),
    (dict(search=dict(solver_kwargs=[1])), r'^train_cfg\.search\.solver_kwargs must be a dict'),
    (dict(search=dict(solver='gp', solver_kwargs=dict(multivariate=True))),
     r'^train_cfg\.search\.solver_kwargs\.multivariate: not a keyword of GPSampler here'),
    (dict(search=dict(solver_kwargs=dict(n_startup_trials=-2))),
     r'^train_cfg\.search\.solver_kwargs\.n_startup_trials must be a non-negative integer'),
    (dict(search=dict(solver='gradient', solver_kwargs=dict(lr=-1))),
     r'^train_cfg\.search\.solver_kwargs\.lr must be a positive number, got -1'),
    (dict(search=dict(solver='gradient', objective='segm_map')),
     r"^train_cfg\.search\.objective='segm_map' has no gradient; the solver 'gradient' "
     r'needs one of'),
    (dict(search=dict(method='gradient')), r'^train_cfg\.search\.method: no longer a key; '
     r"train_cfg\.search\.solver names the solver \(e\.g\. 'gradient'\)$"),
    (dict(search=dict(sampler_kwargs=dict())), r'^train_cfg\.search\.sampler_kwargs: no longer '
     r"a key; the sampler's keywords are train_cfg\.search\.solver_kwargs$"),
])
def test_bad_keys_and_values_are_named(train_cfg, match):
    with pytest.raises(ConfigError, match=match):
        BilevelConfig.from_cfg(train_cfg)


def test_the_strategy_needs_trials_and_d_val():
    with pytest.raises(ConfigError, match="K_b must be positive for strategy 'bilevel'"):
        BilevelConfig.from_cfg(dict(K_b=0)).check_strategy('bilevel', True)
    with pytest.raises(ConfigError, match='needs D_val'):
        BilevelConfig.from_cfg(dict(holdout=None)).check_strategy('bilevel', True)
    BilevelConfig.from_cfg(dict(K_b=0, holdout=None)).check_strategy('naive', False)
