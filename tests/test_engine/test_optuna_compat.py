"""bipa.engine.optuna_compat on real studies (in memory and SQLite, as the
search stores them): each private piece of Optuna it relies on still exists
and behaves. A failure here means the installed Optuna changed one: fix
optuna_compat, not the solvers."""
import inspect

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from bipa.engine.optuna_compat import (
    ENQUEUED_PARAMS_KEY,
    enqueued_params,
    reopen_trial,
    set_trial_user_attr,
)

CHANGED = f'optuna {optuna.__version__} changed what bipa.engine.optuna_compat relies on: '
DISTS = {'w00': FloatDistribution(1.0, 3.0), 'w01': FloatDistribution(1.0, 3.0)}
POINT = {'w00': 1.5, 'w01': 2.5}


@pytest.fixture(params=['memory', 'sqlite'])
def study(request, tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = None if request.param == 'memory' else f'sqlite:///{tmp_path}/s.db'
    return optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))


def running(study, number):
    """The stored record of trial ``number``, as a resumed process finds it."""
    (trial, ) = [t for t in study.get_trials(states=(TrialState.RUNNING, )) if t.number == number]
    return trial


def test_the_private_names_exist(study):
    asked = study.ask()
    frozen = running(study, asked.number)
    assert isinstance(getattr(frozen, '_trial_id', None), int), CHANGED + 'FrozenTrial._trial_id'
    assert frozen._trial_id == asked._trial_id, CHANGED + 'FrozenTrial._trial_id is not the id'
    assert callable(getattr(getattr(study, '_storage', None), 'set_trial_user_attr', None)), \
        CHANGED + 'Study._storage.set_trial_user_attr'
    assert list(inspect.signature(optuna.trial.Trial).parameters) == ['study', 'trial_id'], \
        CHANGED + 'Trial(study, trial_id)'


def test_an_enqueued_trials_fixed_params_are_visible(study):
    study.enqueue_trial(POINT)
    enqueued = study.ask()  # killed before any suggest: no parameter written
    sampled = study.ask()
    frozen = running(study, enqueued.number)
    assert frozen.params == {}
    assert ENQUEUED_PARAMS_KEY in frozen.system_attrs, CHANGED + f'{ENQUEUED_PARAMS_KEY!r}'
    assert enqueued_params(frozen) == POINT, CHANGED + 'the enqueued parameters'
    assert enqueued_params(running(study, sampled.number)) is None


def test_a_running_trial_reopens_with_its_enqueued_and_written_params(study):
    study.enqueue_trial(POINT)
    asked = study.ask()
    asked.suggest_float('w00', 1.0, 3.0)  # killed after the first parameter
    live = reopen_trial(study, running(study, asked.number))
    assert isinstance(live, optuna.trial.Trial) and live.number == asked.number
    assert {name: live.suggest_float(name, d.low, d.high) for name, d in DISTS.items()} == POINT
    study.tell(live, 1.0)
    (done, ) = study.get_trials()
    assert (done.state, done.params, done.value) == (TrialState.COMPLETE, POINT, 1.0)


def test_a_running_trials_user_attr_is_set_on_the_trial(study):
    first, second = study.ask(DISTS), study.ask(DISTS)
    set_trial_user_attr(study, running(study, second.number), 'fail_reason', 'ValueError: x')
    study.tell(second, state=TrialState.FAIL)
    study.tell(first, 2.0)
    trials = study.get_trials()
    assert trials[1].user_attrs == {'fail_reason': 'ValueError: x'}
    assert trials[0].user_attrs == {} and study.user_attrs == {}
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
