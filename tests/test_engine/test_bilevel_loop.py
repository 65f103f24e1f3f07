import glob
import json
import os
import os.path as osp
import re
import shutil

import optuna
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from optuna.trial import TrialState

from bipa.apis import use_data_root
from bipa.engine import BaseSolver, BilevelLoop
from bipa.utils import ConfigError
from tests.conftest import DEMO_CFG, Killed
from tests.test_engine.conftest import (
    KillAt,
    RecordPrompt,
    assert_same_weights,
    killed_in_search_and_resumed,
)
from tests.test_engine.conftest import run_loop as run


def studies(work_dir):
    storage = 'sqlite:///' + osp.join(work_dir, 'prompt_search.db')
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    return {n: optuna.load_study(study_name=n, storage=storage) for n in names}


def finished(study):
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL))


def test_full_bilevel_run(reference_run):
    runner = reference_run
    hook = runner.prompt_record
    loop = runner.train_loop
    assert isinstance(loop, BilevelLoop) and loop.rounds_done == 2
    assert runner.iter == 2 * 2 + 2
    found = studies(runner.work_dir)
    assert list(found) == ['prompt_search-round1', 'prompt_search-round2']
    assert all(len(finished(s)) == 3 for s in found.values())
    # rounds are warm-started with the previous best and the identity point
    first = found['prompt_search-round2'].trials[0]
    best1 = found['prompt_search-round1'].best_trial
    assert first.params == best1.params
    # rho changes only at the searches (after iterations 2 and 4) ...
    w = hook.weights
    assert torch.equal(w[0], torch.ones(16)) and torch.equal(w[0], w[1])
    assert torch.equal(w[2], w[3]) and torch.equal(w[4], w[5])
    # ... and stays bitwise equal through fine-tuning, at round 2's best
    best2 = found['prompt_search-round2'].best_trial
    expected = torch.tensor([best2.params[f'w{g:02d}'] for g in range(16)])
    assert torch.equal(w[-1], expected.to(w[-1].dtype))
    # the base embedding never trains in bilevel mode
    assert all(torch.equal(e, hook.embeddings[0]) for e in hook.embeddings)


@pytest.mark.parametrize('mode, strategy, embedding_trains', [
    ('frozen', None, False),  # the strategy follows the dense prompt's mode
    ('naive', 'naive', True),  # or is set to the same
])
def test_strategies_without_search(loop_cfg, mode, strategy, embedding_trains):
    cfg = loop_cfg(strategy=strategy)
    cfg.model.roi_head.mask_head.dense_prompt.mode = mode
    hook = RecordPrompt()
    runner = run(cfg, hook)
    assert runner.train_loop.strategy == mode and runner.iter == 6  # T * K_a + K_c
    assert not osp.exists(osp.join(runner.work_dir, 'prompt_search.db'))
    assert all(torch.equal(w, torch.ones(16)) for w in hook.weights)
    assert torch.equal(hook.embeddings[0], hook.embeddings[-1]) != embedding_trains


def test_adaptation_only(loop_cfg):
    hook = RecordPrompt()
    runner = run(loop_cfg(adaptation_only=True), hook)
    assert runner.iter == 4  # T * K_a, no fine-tuning
    found = studies(runner.work_dir)
    assert len(found) == 2 and all(len(finished(s)) == 3 for s in found.values())
    best2 = found['prompt_search-round2'].best_trial
    expected = torch.tensor([best2.params[f'w{g:02d}'] for g in range(16)])
    assert torch.equal(runner.model.dense_prompt.get_group_weights(), expected)
    # the last round's search ends the run before the last checkpoint is saved,
    # so the checkpoint a user tests holds rho*, and its loop state says so
    checkpoint = torch.load(osp.join(runner.work_dir, 'iter_4.pth'), weights_only=False)
    saved = checkpoint['state_dict']['roi_head.mask_head.dense_prompt.group_weights']
    assert torch.equal(saved, expected.to(saved.dtype))
    assert checkpoint['bilevel_loop']['rounds_done'] == 2


@pytest.mark.parametrize('search, match', [
    (dict(sampeler='gp'), r"train_cfg\.search has unknown key\(s\) \['sampeler'\]"),
    (dict(batch_size=0), r'train_cfg\.search\.batch_size must be a positive integer, got 0'),
    (dict(cache='yes'), r"train_cfg\.search\.cache must be True or False, got 'yes'"),
    (dict(pipeline=dict(type='LoadImageFromFile')), r'train_cfg\.search\.pipeline must be a list'),
])
def test_search_config_names_a_bad_key(loop_cfg, search, match):
    with pytest.raises(ValueError, match=match):
        Runner.from_cfg(loop_cfg(search=search)).train()


@pytest.mark.parametrize('search', [
    dict(solver='gradient', objective='soft_iou', solver_kwargs=dict(lr=0.2)),
    dict(solver='cmaes', objective='bce+dice', solver_kwargs=dict(popsize=4)),
])
def test_the_solver_and_objective_come_from_the_config(loop_cfg, search, tmp_path, monkeypatch):
    """Both rounds run the configured solver on the configured f; the final rho
    is round 2's best, off the identity."""
    trials = 6 if search['solver'] == 'gradient' else 10  # WS-CMA-ES needs round 1's 10
    runner = run(loop_cfg(work_dir=tmp_path / 'ref', K_b=trials, search=search))
    found = studies(runner.work_dir)
    round1, round2 = found['prompt_search-round1'], found['prompt_search-round2']
    assert all(len(finished(s)) == trials for s in found.values())
    assert runner.train_loop.build_objective().objective == search['objective']
    best = [round2.best_trial.params[f'w{g:02d}'] for g in range(16)]
    assert runner.model.dense_prompt.get_group_weights().tolist() == pytest.approx(best)
    if search['solver'] == 'gradient':
        assert all(len(t.user_attrs['grad']) == 16 for t in round1.trials + round2.trials)
        # killed in the middle of round 2's descent, resumed: the same trials
        # (points, f, gradients) and the same final rho and weights
        resumed = killed_in_search_and_resumed(loop_cfg, monkeypatch, round_idx=2, trial=4,
                                               work_dir=tmp_path / 'killed', K_b=6,
                                               search=search)
        for name, study in found.items():
            other = studies(resumed.work_dir)[name]
            assert [(t.params, t.value, t.user_attrs) for t in other.trials] == [
                (t.params, t.value, t.user_attrs) for t in study.trials]
        assert_same_weights(runner, resumed)
    else:  # round 2's CMA-ES starts from round 1's trials (WS-CMA-ES)
        assert runner.train_loop.search._source_trials == round1.get_trials(
            states=(TrialState.COMPLETE, ))
    assert not torch.equal(runner.model.dense_prompt.get_group_weights(), torch.ones(16))


def test_splits_are_logged_and_written(loop_cfg, tiny_data):
    cfg = loop_cfg(T=1, K_a=1, K_c=0)
    cfg.log_level = 'INFO'
    cfg.experiment_name = 'splits'  # a logger of its own, with its log file in log_dir
    cfg.randomness = dict(seed=4)
    runner = Runner.from_cfg(cfg)
    runner.train()
    with open(osp.join(runner.log_dir, 'splits.json')) as f:
        splits = json.load(f)
    train, val = splits['D_tr'], splits['D_val']
    with open(tiny_data / 'annotations' / 'train.json') as f:
        all_ids = {img['id'] for img in json.load(f)['images']}
    assert len(val['image_ids']) == 3 and len(train['image_ids']) == 7
    assert set(train['image_ids']) | set(val['image_ids']) == all_ids
    assert train['dataset']['part'] == 'train' and val['dataset']['part'] == 'holdout'
    assert train['dataset']['dataset']['ann_file'] == 'annotations/train.json'
    assert val['pipeline'][1]['type'] == 'LoadAnnotations'  # before Resize
    assert splits['seeds'] == dict(run=4, holdout=0)
    log = ''.join(open(p).read() for p in glob.glob(osp.join(runner.log_dir, '*.log')))
    assert "D_tr: {'type': 'HoldoutSplit', 'part': 'train'" in log and '7 images' in log
    assert "D_val: {'type': 'HoldoutSplit', 'part': 'holdout'" in log and '3 images' in log
    assert 'seeds: run=4, holdout=0' in log


def test_epoch_units(loop_cfg):
    runner = Runner.from_cfg(loop_cfg(unit='epoch', T=1, K_a=1, K_c=1))
    runner.train()
    per_epoch = len(runner.train_dataloader)  # 7 training images (10 - 3 held out) / 2
    assert per_epoch == 4 and runner.iter == 2 * per_epoch


def test_strategy_must_match_the_model(loop_cfg):
    cfg = loop_cfg(strategy='naive')  # the model's dense prompt is 'bilevel'
    with pytest.raises(ValueError, match="disagrees with the model's dense prompt mode"):
        Runner.from_cfg(cfg).train()


def test_resume_mid_search_loses_and_repeats_no_trial(loop_cfg, tmp_path, monkeypatch,
                                                      reference_run):
    reference = reference_run
    ref_weights = reference.model.dense_prompt.get_group_weights()

    calls = {'n': 0}
    evaluate = BaseSolver._evaluate

    def dying_evaluate(self, study, round_idx, number, objective):
        calls['n'] += 1
        if round_idx == 1 and number == 1:
            raise Killed  # the trial was asked: it stays RUNNING in the storage
        return evaluate(self, study, round_idx, number, objective)

    monkeypatch.setattr(BaseSolver, '_evaluate', dying_evaluate)
    with pytest.raises(Killed):
        run(loop_cfg(work_dir=tmp_path / 'killed'))
    monkeypatch.setattr(BaseSolver, '_evaluate', evaluate)
    interrupted = studies(str(tmp_path / 'killed'))['prompt_search-round1']
    assert [t.state for t in interrupted.trials] == [TrialState.COMPLETE, TrialState.RUNNING]

    cfg = loop_cfg(work_dir=tmp_path / 'killed')
    cfg.resume = True
    resumed = run(cfg)
    assert resumed.iter == reference.iter
    ref_studies, new_studies = studies(reference.work_dir), studies(resumed.work_dir)
    for name, study in ref_studies.items():
        other = new_studies[name]
        assert len(other.trials) == len(study.trials) == 3
        assert [t.params for t in other.trials] == [t.params for t in study.trials]
        assert [t.value for t in other.trials] == [t.value for t in study.trials]
    assert torch.equal(resumed.model.dense_prompt.get_group_weights(), ref_weights)
    for (name, a), b in zip(reference.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


# killed during round 1's training and during fine-tuning (after both searches
# and the checkpoint that holds round 2's rho); the rounds the resumed run searches
@pytest.mark.parametrize('kill_at, searched', [(1, [1, 2]), (5, [])])
def test_resume_after_a_kill_in_training(loop_cfg, tmp_path, kill_at, searched, reference_run,
                                         monkeypatch):
    reference = reference_run
    cfg = loop_cfg(work_dir=tmp_path / 'killed')
    cfg.default_hooks.checkpoint.interval = 1
    with pytest.raises(Killed):
        run(cfg, KillAt(kill_at))
    cfg = loop_cfg(work_dir=tmp_path / 'killed')
    cfg.resume = True
    rounds, search = [], BilevelLoop._run_search
    monkeypatch.setattr(BilevelLoop, '_run_search', lambda self, round_idx, iteration: (
        rounds.append(round_idx), search(self, round_idx, iteration)))
    resumed = run(cfg)
    assert rounds == searched  # a finished round's search is not run again
    assert resumed.iter == reference.iter
    for (name, a), b in zip(reference.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert len(studies(resumed.work_dir)) == 2


class RecordLR(Hook):
    def __init__(self):
        self.lrs = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs.append(runner.optim_wrapper.optimizer.param_groups[0]['lr'])


def test_each_phase_has_its_own_learning_rate_schedule(loop_cfg):
    """param_scheduler drives adaptation, train_cfg.finetune fine-tuning; each
    counts from its phase's start, and fine-tuning restarts at finetune.lr."""
    cfg = loop_cfg(K_b=1, finetune=dict(lr=5e-4, param_scheduler=[
        dict(type='MultiStepLR', by_epoch=False, milestones=[1], gamma=0.5)]))
    cfg.param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[3], gamma=0.1)]
    hook = RecordLR()
    run(cfg, hook)
    base = cfg.optim_wrapper.optimizer.lr
    assert hook.lrs == pytest.approx([base, base, base, base * 0.1, 5e-4, 2.5e-4])


def test_epoch_schedulers_count_from_the_phase_start(loop_cfg):
    cfg = loop_cfg(unit='epoch', T=1, K_a=1, K_c=2, finetune=dict(lr=None, param_scheduler=[
        dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.5)]))
    cfg.param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1)]
    hook = RecordLR()
    run(cfg, hook)
    base = cfg.optim_wrapper.optimizer.lr
    # 4 iterations per epoch; the adaptation decay at epoch 1 would fall on the
    # phase's end, so it never fires; fine-tuning restarts at the base rate
    assert hook.lrs == pytest.approx([base] * 8 + [base / 2] * 4)


@pytest.mark.parametrize('finetune, match', [
    (dict(param_scheduler=[dict(type='MultiStepLR', milestones=[1])]),
     r'train_cfg\.finetune\.param_scheduler\.0 \(MultiStepLR\) counts epochs'),
    (dict(learning_rate=1e-3), r"train_cfg\.finetune has unknown key\(s\) \['learning_rate'\]"),
    (dict(lr=-1), r'train_cfg\.finetune\.lr must be a positive number'),
    (dict(reset_optimizer=1), r'train_cfg\.finetune\.reset_optimizer must be True or False, got 1'),
])
def test_bad_finetune_config(loop_cfg, finetune, match):
    with pytest.raises(ValueError, match=match):
        Runner.from_cfg(loop_cfg(finetune=finetune)).train()


class CountValidations(Hook):
    def __init__(self):
        self.count = 0

    def before_val_epoch(self, runner):
        self.count += 1


def test_a_validation_interval_longer_than_the_run_validates_never(loop_cfg):
    """mmengine's loop would validate after the last of the 3 iterations."""
    cfg = loop_cfg(val_interval=10000, T=1, K_a=2, K_b=1, K_c=1)
    demo = Config.fromfile(str(DEMO_CFG))
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = demo[key]
    use_data_root(cfg, cfg.train_dataloader.dataset.data_root)
    hook = CountValidations()
    run(cfg, hook)
    assert hook.count == 0


def test_an_epoch_schedule_on_iterations_names_every_scheduler_at_once(loop_cfg):
    """The paper's schedule (epochs in both phases) with unit='iter': one error
    names both keys to change."""
    cfg = loop_cfg(K_a=3, finetune=dict(param_scheduler=[
        dict(type='LinearLR', by_epoch=False, begin=0, end=1),
        dict(type='MultiStepLR', milestones=[1])]))
    cfg.param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1])]
    with pytest.raises(ValueError) as err:
        Runner.from_cfg(cfg).train()
    assert str(err.value) == (
        'param_scheduler.0 (MultiStepLR) counts epochs (by_epoch=True) but its phase '
        '(iterations 0..6) is not whole epochs of 4 iterations; '
        'train_cfg.finetune.param_scheduler.1 (MultiStepLR) counts epochs (by_epoch=True) but '
        'its phase (iterations 6..8) is not whole epochs of 4 iterations: set by_epoch=False '
        '(and begin/end/milestones in iterations) in each')


class RecordAdamSteps(Hook):
    """AdamW's step counts over the parameters after every iteration (after the
    phase switch of that iteration); an empty set: no optimizer state."""

    def __init__(self):
        self.steps = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        state = runner.optim_wrapper.optimizer.state
        self.steps.append({int(s['step']) for s in state.values()})


def short_finetune_cfg(loop_cfg, reset_optimizer, **kwargs):
    """2 adaptation and 2 fine-tuning iterations, no search (a frozen prompt)."""
    cfg = loop_cfg(T=1, K_a=2, K_c=2, finetune=dict(reset_optimizer=reset_optimizer), **kwargs)
    cfg.model.roi_head.mask_head.dense_prompt.mode = 'frozen'
    return cfg


@pytest.mark.parametrize('reset_optimizer, steps', [
    (False, [{1}, {2}, {3}, {4}]),
    (True, [{1}, set(), {1}, {2}]),  # cleared at the switch, fresh from the next step
])
def test_finetune_can_reset_the_optimizer(loop_cfg, reset_optimizer, steps):
    hook = RecordAdamSteps()
    run(short_finetune_cfg(loop_cfg, reset_optimizer), hook)
    assert hook.steps == steps


def test_resume_after_an_optimizer_reset(loop_cfg, tmp_path):
    """Killed in either fine-tuning iteration, a run resumes from the previous
    checkpoint (the first one written right after the reset), neither losing
    the reset nor repeating it, and ends as an uninterrupted run."""
    reference = run(short_finetune_cfg(loop_cfg, True, work_dir=tmp_path / 'ref'))
    for kill_at, steps_after in ((3, [{1}, {2}]), (4, [{2}])):
        work_dir = tmp_path / f'killed_at_{kill_at}'
        cfg = short_finetune_cfg(loop_cfg, True, work_dir=work_dir)
        cfg.default_hooks.checkpoint.interval = 1
        with pytest.raises(Killed):
            run(cfg, KillAt(kill_at))
        if kill_at == 3:
            checkpoint = torch.load(work_dir / 'iter_2.pth', weights_only=False)
            assert checkpoint['optimizer']['state'] == {}
        cfg = short_finetune_cfg(loop_cfg, True, work_dir=work_dir)
        cfg.resume = True
        hook = RecordAdamSteps()
        resumed = run(cfg, hook)
        assert hook.steps == steps_after, kill_at
        for (name, a), b in zip(reference.model.state_dict().items(),
                                resumed.model.state_dict().values()):
            assert torch.equal(a, b), (kill_at, name)


def with_val_split(cfg, tiny_data):
    root = str(tiny_data) + '/'
    cfg.val_dataloader = dict(cfg.test_dataloader, dataset=dict(
        cfg.test_dataloader.dataset, ann_file='annotations/val.json', data_prefix=dict(img='val/')))
    cfg.val_evaluator = dict(cfg.test_evaluator, ann_file=root + 'annotations/val.json')
    cfg.val_cfg = dict(type='ValLoop')
    return cfg


def test_dval_from_a_named_split(loop_cfg, tiny_data):
    cfg = with_val_split(loop_cfg(holdout=None, val_split='val_dataloader'), tiny_data)
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    assert len(runner.train_dataloader.dataset) == 10  # the whole training split
    dataset = runner.train_loop.build_objective().dataloader.dataset
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    assert len(paths) == 2 and all('/val/' in p for p in paths)


def test_dval_split_is_never_the_test_split(loop_cfg, tiny_data):
    cfg = with_val_split(loop_cfg(holdout=None, val_split='val_dataloader'), tiny_data)
    cfg.test_dataloader = cfg.val_dataloader  # UIIS: val is the reported split
    with pytest.raises(ValueError, match='that is the test split'):
        Runner.from_cfg(cfg).train()
    with pytest.raises(ValueError, match='both choose D_val'):
        Runner.from_cfg(loop_cfg(val_split='val_dataloader')).train()


def test_learned_base_embedding_trains_in_adaptation_only(loop_cfg):
    cfg = loop_cfg()
    cfg.model.roi_head.mask_head.dense_prompt.base = 'learned'
    hook = RecordPrompt()
    runner = run(cfg, hook)
    e = hook.embeddings  # after each of 4 adaptation and 2 fine-tuning iterations
    assert not torch.equal(e[0], e[1]) and not torch.equal(e[2], e[3])
    assert torch.equal(e[3], e[4]) and torch.equal(e[4], e[5])  # frozen with rho*
    assert not runner.model.dense_prompt.embedding.requires_grad
    # rho = e * w: the searched weights still scale the learned embedding
    best, _ = runner.train_loop.search.best(runner.train_loop.T)
    torch.testing.assert_close(hook.weights[-1], torch.tensor(best))
    with pytest.raises(ValueError, match="base='learned' applies to mode 'bilevel'"):
        cfg.model.roi_head.mask_head.dense_prompt.mode = 'naive'
        Runner.from_cfg(cfg)


def test_rng_states_per_rank(reference_run, monkeypatch):
    """The loop's part of per-rank RNG states, on one process: two ranks stood
    in for by the gather, the world size and the rank (the real gather over
    two processes: tests/test_tools/test_dist_train.py)."""
    loop = reference_run.train_loop
    hook = next(h for h in reference_run.hooks if type(h).__name__ == '_LoopStateHook')
    one = loop.state_dict()['rng']  # one process: a list of one, of the current states
    assert len(one) == 1 and torch.equal(one[0]['torch'], torch.get_rng_state())

    module = 'bipa.engine.bilevel_loop.'
    monkeypatch.setattr(module + 'get_world_size', lambda: 2)
    monkeypatch.setattr(module + 'gather_rng_states', lambda: ['rank0', 'rank1'])
    try:
        hook.after_train_iter(reference_run, 0)  # no checkpoint after this iteration
        assert loop.gathered_rng is None  # so no gather (a collective) either
        monkeypatch.setattr(type(hook), '_checkpoint_follows', staticmethod(lambda runner: True))
        hook.after_train_iter(reference_run, 0)  # every rank, before CheckpointHook
        checkpoint = {}
        hook.before_save_checkpoint(reference_run, checkpoint)  # rank 0
        assert checkpoint['bilevel_loop']['rng'] == ['rank0', 'rank1']
        monkeypatch.setattr(module + 'get_rank', lambda: 1)
        state = loop._with_rank_rng(checkpoint['bilevel_loop'])  # a resume, on rank 1
        assert state['rng'] == 'rank1'
        hook.before_train_iter(reference_run, 0)  # stale: a save now holds rank 0's only
        logged = []
        monkeypatch.setattr(module + 'print_log', lambda msg, **kwargs: logged.append(msg))
        rng = loop.state_dict()['rng']
        assert rng.keys() >= {'torch', 'numpy', 'python'}
        assert len(logged) == 1 and "holds rank 0's RNG states only" in logged[0]
    finally:
        loop.gathered_rng = None


def test_resume_from_a_checkpoint_with_one_rng_state(loop_cfg, tmp_path, reference_run):
    """Checkpoints written before per-rank states hold one dict: every rank
    restores it (one process: the same run as before)."""
    checkpoint = torch.load(osp.join(reference_run.work_dir, 'iter_4.pth'), weights_only=False)
    assert len(checkpoint['bilevel_loop']['rng']) == 1
    checkpoint['bilevel_loop']['rng'] = checkpoint['bilevel_loop']['rng'][0]
    old = str(tmp_path / 'old_iter_4.pth')
    torch.save(checkpoint, old)
    cfg = loop_cfg(work_dir=tmp_path / 'resumed')
    cfg.resume, cfg.load_from = True, old
    os.makedirs(cfg.work_dir)  # with the searches' study, as in the run's own work dir
    shutil.copy(osp.join(reference_run.work_dir, 'prompt_search.db'), cfg.work_dir)
    resumed = run(cfg)
    assert resumed.iter == reference_run.iter
    for (name, a), b in zip(reference_run.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_with_another_world_size_is_refused(loop_cfg, tmp_path, reference_run):
    checkpoint = torch.load(osp.join(reference_run.work_dir, 'iter_4.pth'), weights_only=False)
    checkpoint['bilevel_loop']['rng'] *= 2  # as if written by two processes
    two = str(tmp_path / 'two_ranks_iter_4.pth')
    torch.save(checkpoint, two)
    cfg = loop_cfg(work_dir=tmp_path / 'resumed')
    cfg.resume, cfg.load_from = True, two
    expected = f'cannot resume from {two} (iteration 4): it was written by 2 process(es), '
    with pytest.raises(ConfigError, match='^' + re.escape(expected + 'this run has 1; ')):
        run(cfg)
