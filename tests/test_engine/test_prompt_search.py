import math

import numpy as np
import optuna
import pytest
import torch
from mmengine.runner import Runner
from optuna.trial import TrialState

from bipa.datasets import holdout_image_ids
from bipa.engine import MaskObjective, PromptSearch
from bipa.engine.prompt_search import fail_reasons


@pytest.fixture
def objective_parts(loop_cfg):
    runner = Runner.from_cfg(loop_cfg())
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.model.init_weights()
    loop = runner.train_loop
    return runner, loop


def test_f_is_deterministic_and_cached_equals_uncached(objective_parts):
    runner, loop = objective_parts
    cached = loop.build_objective()
    uncached = MaskObjective(runner.model, cached.dataloader, cache=False)
    w = [1.0 + 0.1 * g for g in range(16)]
    rng = (torch.get_rng_state(), np.random.get_state()[1].copy())
    runner.model.train()
    a, b, c = cached(w), cached(w), uncached(w)
    assert a == b  # the same rho twice gives exactly the same f
    assert c == pytest.approx(a, rel=1e-6, abs=0)
    assert cached([1.0] * 16) != a  # f depends on rho
    # the training RNG is untouched and the model is back in training mode
    assert torch.equal(torch.get_rng_state(), rng[0])
    assert np.array_equal(np.random.get_state()[1], rng[1])
    assert runner.model.training
    cached.free()
    assert cached.batches is None


def test_dval_is_held_out_of_train_and_never_the_test_split(objective_parts, tiny_data):
    runner, loop = objective_parts
    objective = loop.build_objective()
    val_ids = {objective.dataloader.dataset.get_data_info(i)['img_id']
               for i in range(len(objective.dataloader.dataset))}
    train_ds = runner.train_dataloader.dataset
    train_ids = {train_ds.get_data_info(i)['img_id'] for i in range(len(train_ds))}
    assert len(val_ids) == 3 and not val_ids & train_ids
    assert len(val_ids | train_ids) == 10  # together: the whole training annotation file
    paths = {objective.dataloader.dataset.get_data_info(i)['img_path']
             for i in range(len(objective.dataloader.dataset))}
    assert all('/train/' in p for p in paths)


def test_holdout_is_deterministic():
    ids = list(range(100, 200))
    assert holdout_image_ids(ids, fraction=0.1, seed=3) == holdout_image_ids(
        list(reversed(ids)), fraction=0.1, seed=3)
    assert len(holdout_image_ids(ids, count=7, seed=0)) == 7
    assert holdout_image_ids(ids, count=7, seed=0) != holdout_image_ids(ids, count=7, seed=1)
    with pytest.raises(ValueError, match='exactly one of fraction or count'):
        holdout_image_ids(ids, fraction=0.1, count=3)
    with pytest.raises(ValueError, match='cannot hold out 100 of 100'):
        holdout_image_ids(ids, count=100)


def make_search(tmp_path, **kwargs):
    return PromptSearch(storage=f'sqlite:///{tmp_path}/s.db', study_name='t', num_groups=2,
                        interval=(1.0, 3.0), **kwargs)


@pytest.mark.parametrize('sampler', ['tpe', 'gp'])
def test_search_minimises_a_known_function(tmp_path, sampler):
    search = make_search(tmp_path, sampler=sampler)
    target = np.array([2.5, 1.5])
    best, value = search.run_round(1, 12, lambda w: float(np.square(np.array(w) - target).sum()),
                                   warm_start=[[1.0, 1.0]])
    study = search.study(1)
    assert len(study.trials) == 12 and study.trials[0].params == {'w00': 1.0, 'w01': 1.0}
    assert value == min(t.value for t in study.trials) and value < 0.5


def test_failed_trials_are_recorded_with_their_reason(tmp_path):
    calls = {'n': 0}

    def flaky(w):
        calls['n'] += 1
        if calls['n'] == 2:
            raise RuntimeError('CUDA out of memory (simulated)')
        if calls['n'] == 3:
            return math.nan
        return sum(w)

    search = make_search(tmp_path)
    best, value = search.run_round(1, 4, flaky)
    study = search.study(1)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 2 and states.count(TrialState.COMPLETE) == 2
    reasons = [t.user_attrs.get('fail_reason') for t in study.trials]
    assert reasons[0] is None and reasons[3] is None
    assert reasons[1] == 'RuntimeError: CUDA out of memory (simulated)'
    assert reasons[2] == 'FloatingPointError: f is not finite (nan)'
    assert fail_reasons(study) == {1: reasons[1], 2: reasons[2]} and study.user_attrs == {}


def test_fail_reasons_of_a_storage_written_before_they_were_trial_attrs(tmp_path):
    """Such a storage keeps them as the study's ``trial_<n>_fail_reason``; a
    search resumed from it still skips the trials failed as interrupted."""
    study = make_search(tmp_path).study(1)
    for _ in range(3):
        study.ask()
    study.set_user_attr('trial_1_fail_reason', 'interrupted while its parameters were written')
    study.set_user_attr('trial_2_fail_reason', 'ValueError: bad')
    for number in range(3):
        study.tell(number, state=TrialState.FAIL)
    assert fail_reasons(study) == {1: 'interrupted while its parameters were written',
                                   2: 'ValueError: bad'}
    assert PromptSearch._interrupted(study) == {1}


def test_all_trials_failing_stops_the_run(tmp_path):
    def broken(w):
        raise ValueError('bad objective')

    with pytest.raises(RuntimeError, match='no trial completed'):
        make_search(tmp_path).run_round(1, 2, broken)


def test_bad_search_settings(tmp_path):
    with pytest.raises(ValueError, match='sampler must be one of'):
        make_search(tmp_path, sampler='cmaes')
    with pytest.raises(ValueError, match='needs low < high'):
        PromptSearch(storage='sqlite://', study_name='t', num_groups=2, interval=(3, 1))


class Killed(BaseException):
    """Stands for the process being killed."""


GROUPS = 16
WARM = [[1.5] * GROUPS, [1.0] * GROUPS]  # enqueued: trials 0 and 1


def sphere(w):
    return float(np.square(np.array(w) - 1.7).sum())


def complete(search, round_idx=1):
    return [(t.params, t.value) for t in search.study(round_idx).trials
            if t.state == TrialState.COMPLETE]


def kill_once(monkeypatch, cls, name, when):
    """Make ``cls.name`` raise Killed once, on the call where ``when(*args)``
    says so; ``when`` may count calls."""
    original = getattr(cls, name)
    state = {'done': False}

    def wrapper(*args, **kwargs):
        if not state['done'] and when(*args, **kwargs):
            state['done'] = True
            raise Killed
        return original(*args, **kwargs)
    monkeypatch.setattr(cls, name, wrapper)
    return original


def search_at(path):
    return PromptSearch(storage=f'sqlite:///{path}', study_name='t', num_groups=GROUPS,
                        interval=(1.0, 3.0))


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    search = search_at(tmp_path_factory.mktemp('ref') / 's.db')
    search.run_round(1, 6, sphere, warm_start=WARM)
    return complete(search)


def at_trial(number):
    """``when`` for a Study method: the call made for trial ``number``."""
    def when(study, *args, **kwargs):
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == number
    return when


def nth_param_of_trial(number, k):
    """``when`` for Trial._suggest: the (k+1)-th parameter of trial ``number``."""
    def when(trial, name, distribution):
        return trial.number == number and name == PromptSearch.param(k)
    return when


# kills while Optuna writes a trial's parameters: (which trial, its number,
# parameters written before the kill)
SUGGEST_KILLS = [('an enqueued', 0, 0), ('an enqueued', 1, 5), ('a sampled', 3, 0),
                 ('a sampled', 3, 1), ('a sampled', 4, 13), ('a sampled', 2, 15)]
KILLS = {
    'before ask (trial 3)': (optuna.Study, 'ask', at_trial(3)),
    **{f'after {k} param{"" if k == 1 else "s"} of {kind} trial':
       (optuna.trial.Trial, '_suggest', nth_param_of_trial(number, k))
       for kind, number, k in SUGGEST_KILLS},
    'before tell (trial 2)': (optuna.Study, 'tell', at_trial(2)),
}


@pytest.mark.parametrize('kill', list(KILLS) + ['during the evaluation (trial 4)',
                                               'after tell (trial 3)'])
def test_a_kill_at_any_point_of_a_trial_resumes_to_the_same_trials(
        kill, uninterrupted, tmp_path, monkeypatch):
    path = tmp_path / 's.db'
    search = search_at(path)
    objective = sphere
    if kill in KILLS:
        kill_once(monkeypatch, *KILLS[kill])
    elif kill.startswith('during'):
        calls = {'n': 0}

        def objective(w):
            calls['n'] += 1
            if calls['n'] == 5:
                raise Killed
            return sphere(w)
    else:
        search.on_trial = lambda round_idx, trial: (_ for _ in ()).throw(Killed) \
            if trial.number == 3 else None
    with pytest.raises(Killed):
        search.run_round(1, 6, objective, warm_start=WARM)
    monkeypatch.undo()

    resumed = search_at(path)  # a new process
    resumed.run_round(1, 6, sphere, warm_start=WARM)
    assert complete(resumed) == uninterrupted  # same trials, order and f
    study = resumed.study(1)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs['fail_reason'].startswith('interrupted') for t in failed)
    assert len(failed) == (1 if 'sampled' in kill else 0)
