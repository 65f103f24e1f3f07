import json
import math
import wsgiref.util

import numpy as np
import optuna
import pytest
import torch
from mmengine.runner import Runner
from optuna.trial import TrialState

from bipa.engine import BaseSolver, MaskObjective
from bipa.engine.solvers import fail_reasons
from bipa.registry import SOLVERS as REGISTRY


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


def make_search(tmp_path, solver='tpe', **kwargs):
    return REGISTRY.get(solver)(storage=f'sqlite:///{tmp_path}/s.db', study_name='t',
                                num_groups=2, interval=(1.0, 3.0), **kwargs)


@pytest.mark.parametrize('sampler', ['tpe', 'gp'])
def test_search_minimises_a_known_function(tmp_path, sampler):
    search = make_search(tmp_path, sampler)
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
    assert BaseSolver._interrupted(study) == {1}


def test_all_trials_failing_stops_the_run(tmp_path):
    def broken(w):
        raise ValueError('bad objective')

    with pytest.raises(RuntimeError, match='no trial completed'):
        make_search(tmp_path).run_round(1, 2, broken)


def test_bad_search_settings(tmp_path):
    assert REGISTRY.get('nsga') is None
    with pytest.raises(ValueError, match='needs low < high'):
        REGISTRY.get('tpe')(storage='sqlite://', study_name='t', num_groups=2, interval=(3, 1))
    with pytest.raises(ValueError, match=r'solver_kwargs.n_startup: not a keyword of '
                                         r'TPESampler here; it takes .*n_startup_trials'):
        make_search(tmp_path, n_startup=4)
    with pytest.raises(ValueError, match='solver_kwargs.seed: not a keyword'):
        REGISTRY.get('random').check_settings(dict(seed=3))  # the seed is BiPA's
    with pytest.raises(ValueError, match='solver_kwargs.source_trials: not a keyword'):
        make_search(tmp_path, 'cmaes', source_trials=[])
    with pytest.raises(ValueError, match=r'solver_kwargs.n_startup_trials must be a '
                                         r'non-negative integer, got -1'):
        make_search(tmp_path, 'gp', n_startup_trials=-1)
    with pytest.raises(ValueError, match=r'solver_kwargs.popsize must be an integer >= 4'):
        make_search(tmp_path, 'cmaes', popsize=3)
    with pytest.raises(ValueError, match=r'search.solver_kwargs.momentum: unknown key'):
        make_search(tmp_path, 'gradient', momentum=0.9)
    with pytest.raises(ValueError, match=r'search.solver_kwargs.lr must be a positive number'):
        make_search(tmp_path, 'gradient', lr=0)
    with pytest.raises(ValueError, match=r'solver_kwargs.lr: BaseSolver takes no keyword'):
        BaseSolver.check_settings(dict(lr=1))


def test_sampler_kwargs_reach_the_sampler(tmp_path):
    search = make_search(tmp_path, n_startup_trials=3, multivariate=False)
    sampler = search.sampler(1, 0)
    assert sampler._n_startup_trials == 3 and not sampler._multivariate
    assert make_search(tmp_path).sampler(1, 0)._multivariate  # BiPA's default


class Quadratic:
    """``f(w) = |w - target|^2`` with its gradient, like :class:`MaskObjective`."""

    def __init__(self, target):
        self.target = np.asarray(target, dtype=float)

    def __call__(self, w):
        return float(np.square(np.asarray(w) - self.target).sum())

    def value_and_grad(self, w):
        return self(w), (2 * (np.asarray(w) - self.target)).tolist()


def solver_at(path, solver, groups, **kwargs):
    """A solver registered as ``solver`` (the gradient one with lr 0.3)."""
    if solver == 'gradient':
        kwargs.setdefault('lr', 0.3)
    return REGISTRY.get(solver)(storage=f'sqlite:///{path}', study_name='t', num_groups=groups,
                                interval=(1.0, 3.0), **kwargs)


SOLVERS = ['tpe', 'gp', 'cmaes', 'random', 'gradient']


@pytest.mark.parametrize('solver', SOLVERS)
def test_every_solver_moves_rho_off_a_worse_identity(tmp_path, solver):
    """The identity (the warm start) is not optimal: each solver leaves it."""
    objective = Quadratic([2.2, 1.6, 2.5, 1.3])
    search = solver_at(tmp_path / 's.db', solver, 4)
    best, value = search.run_round(1, 10, objective, warm_start=[[1.0] * 4])
    assert best != [1.0] * 4 and value < objective([1.0] * 4)
    trials = search.study(1).trials
    assert len(trials) == 10 and trials[0].params == search.params_of([1.0] * 4)
    if solver == 'gradient':  # each trial keeps its gradient; the descent gets close
        assert all(len(t.user_attrs['grad']) == 4 for t in trials)
        assert value < 0.1 * objective([1.0] * 4)


def test_gradient_search_stays_in_the_interval_and_backs_off_after_a_failure(tmp_path):
    objective = Quadratic([0.2, 3.6])  # the minimum lies outside B = [1, 3]
    calls = {'n': 0}

    class Flaky(Quadratic):
        def value_and_grad(self, w):
            calls['n'] += 1
            if calls['n'] == 4:
                raise FloatingPointError('diverged (simulated)')
            return super().value_and_grad(w)

    search = solver_at(tmp_path / 's.db', 'gradient', 2)
    best, value = search.run_round(1, 12, Flaky([0.2, 3.6]), warm_start=[[1.5, 1.5]])
    assert best == [1.0, 3.0] and value == objective([1.0, 3.0])  # the corner of B
    trials = search.study(1).trials
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert all(1.0 <= w <= 3.0 for t in trials for w in t.params.values())
    # after the failure (trial 3) the search restarts from the best point so far
    best_before = min(trials[:3], key=lambda t: t.value)
    assert search.next_point(trials[:4], [[1.5, 1.5]]) != search.params_of(
        [trials[3].params['w00'], trials[3].params['w01']])
    assert best_before.value < trials[0].value


class Killed(BaseException):
    """Stands for the process being killed."""


GROUPS = 16
WARM = [[1.5] * GROUPS, [1.0] * GROUPS]  # enqueued: trials 0 and 1


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


def search_at(path, solver='tpe'):
    return solver_at(path, solver, GROUPS)


SPHERE = Quadratic([1.7] * GROUPS)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    """The complete trials of an uninterrupted round, per solver."""
    cache = {}

    def get(solver):
        if solver not in cache:
            search = search_at(tmp_path_factory.mktemp('ref') / 's.db', solver)
            search.run_round(1, 6, SPHERE, warm_start=WARM)
            cache[solver] = complete(search)
        return cache[solver]
    return get


def at_trial(number):
    """``when`` for a Study method: the call made for trial ``number``."""
    def when(study, *args, **kwargs):
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == number
    return when


def nth_param_of_trial(number, k):
    """``when`` for Trial._suggest: the (k+1)-th parameter of trial ``number``."""
    def when(trial, name, distribution):
        return trial.number == number and name == BaseSolver.param(k)
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


class KilledAt(Quadratic):
    """:data:`SPHERE` whose ``n``-th evaluation (1-based) kills the process."""

    def __init__(self, n):
        super().__init__([1.7] * GROUPS)
        self.n, self.calls = n, 0

    def _count(self):
        self.calls += 1
        if self.calls == self.n:
            raise Killed

    def __call__(self, w):
        self._count()
        return super().__call__(w)

    def value_and_grad(self, w):
        self._count()
        return super().value_and_grad(w)


def run_killed_and_resumed(kill, solver, path, monkeypatch):
    search = search_at(path, solver)
    objective = SPHERE
    if kill in KILLS:
        kill_once(monkeypatch, *KILLS[kill])
    elif kill.startswith('during'):
        objective = KilledAt(5)
    else:
        search.on_trial = lambda round_idx, trial: (_ for _ in ()).throw(Killed) \
            if trial.number == 3 else None
    with pytest.raises(Killed):
        search.run_round(1, 6, objective, warm_start=WARM)
    monkeypatch.undo()

    resumed = search_at(path, solver)  # a new process
    resumed.run_round(1, 6, SPHERE, warm_start=WARM)
    return resumed


OTHER_KILLS = ['during the evaluation (trial 4)', 'after tell (trial 3)']


@pytest.mark.parametrize('kill', list(KILLS) + OTHER_KILLS)
def test_a_kill_at_any_point_of_a_trial_resumes_to_the_same_trials(
        kill, uninterrupted, tmp_path, monkeypatch):
    resumed = run_killed_and_resumed(kill, 'tpe', tmp_path / 's.db', monkeypatch)
    assert complete(resumed) == uninterrupted('tpe')  # same trials, order and f
    study = resumed.study(1)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs['fail_reason'].startswith('interrupted') for t in failed)
    assert len(failed) == (1 if 'sampled' in kill else 0)


# every other solver, at a kill point of each kind; trial 4 is sampled (an
# Optuna sampler) or enqueued (the gradient search enqueues all its points)
KILLS['after 13 params of trial 4'] = (optuna.trial.Trial, '_suggest', nth_param_of_trial(4, 13))
SOLVER_KILLS = ['after 13 params of trial 4', 'during the evaluation (trial 4)']


@pytest.mark.parametrize('kill', SOLVER_KILLS)
@pytest.mark.parametrize('solver', ['gp', 'cmaes', 'random', 'gradient'])
def test_every_solver_resumes_to_the_same_trials(solver, kill, uninterrupted, tmp_path,
                                                 monkeypatch):
    resumed = run_killed_and_resumed(kill, solver, tmp_path / 's.db', monkeypatch)
    assert complete(resumed) == uninterrupted(solver)
    if solver == 'gradient':
        assert [t.user_attrs['grad'] for t in resumed.study(1).trials
                if t.state == TrialState.COMPLETE] == [
            SPHERE.value_and_grad(list(p.values()))[1] for p, _ in uninterrupted(solver)]


def test_optuna_dashboard_reads_the_search_storage(tmp_path):
    """``optuna-dashboard sqlite:///.../prompt_search.db`` serves our studies:
    its WSGI app lists both rounds and a round's trials with their gradients."""
    dashboard = pytest.importorskip('optuna_dashboard')  # requirements/tests.txt
    path = tmp_path / 'prompt_search.db'
    search = solver_at(path, 'gradient', 2)
    for round_idx in (1, 2):
        search.run_round(round_idx, 3, Quadratic([2.0, 1.5]), warm_start=[[1.0, 1.0]])
    app = dashboard.wsgi(f'sqlite:///{path}')

    def get(url):
        environ = {}
        wsgiref.util.setup_testing_defaults(environ)
        environ['PATH_INFO'] = url
        status = []
        body = b''.join(app(environ, lambda s, headers, *_: status.append(s)))
        assert status == ['200 OK'], (url, status, body[:200])
        return json.loads(body)

    studies = {s['study_name']: s for s in get('/api/studies')['study_summaries']}
    assert set(studies) == {'t-round1', 't-round2'}
    detail = get(f'/api/studies/{studies["t-round2"]["study_id"]}')
    assert len(detail['trials']) == 3
    attrs = {a['key']: a['value'] for a in detail['trials'][0]['user_attrs']}
    assert json.loads(attrs['grad']) == search.study(2).trials[0].user_attrs['grad']
