"""A solver of one's own, defined and registered here and nowhere else: it runs
in the bilevel loop, resumes after a kill and appears in search_compare."""
import os.path as osp

import optuna
import pytest
from mmengine.runner import Runner
from optuna.trial import TrialState

from bipa.engine import BaseSolver
from bipa.registry import SOLVERS
from bipa.utils import ConfigError
from tests.conftest import init_checkpoint, load_tool, tiny_bilevel_cfg
from tests.test_engine.conftest import assert_same_weights, killed_in_search_and_resumed
from tests.test_engine.conftest import run_loop as run


@SOLVERS.register_module(name='toy_sweep')
class ToySweep(BaseSolver):
    """Coordinate steps: after the warm start, trial k raises group
    ``k mod N_g`` of the best point so far by ``step`` (clipped to B). The
    next point is a function of the stored trials only (the resume invariant)."""

    explores = 'local'

    def __init__(self, *, step: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.step = self.check_settings(dict(step=step))['step']

    @classmethod
    def check_settings(cls, settings: dict) -> dict:
        step = settings.get('step', 0.5)
        if set(settings) - {'step'} or not (isinstance(step, float) and step > 0):
            raise ConfigError(f'train_cfg.search.solver_kwargs: toy_sweep takes a positive '
                              f'float step, got {settings}')
        return dict(step=step)

    def next_point(self, finished, warm_start):
        best = min((t for t in finished if t.state == TrialState.COMPLETE),
                   key=lambda t: (t.value, t.number))
        weights = self.weights_of(best.params)
        weights[len(finished) % self.num_groups] += self.step
        return weights  # clipped to B when enqueued


def trials_of(work_dir):
    storage = 'sqlite:///' + osp.join(work_dir, 'prompt_search.db')
    return {s.study_name: [(t.number, t.params, t.value, t.state) for t in
                           optuna.load_study(study_name=s.study_name, storage=storage).trials]
            for s in optuna.get_all_study_summaries(storage)}


SEARCH = dict(solver='toy_sweep', solver_kwargs=dict(step=0.25), objective='bce+dice')


def test_a_registered_solver_runs_in_the_loop_and_resumes_after_a_kill(loop_cfg, tmp_path,
                                                                        monkeypatch):
    reference = run(loop_cfg(work_dir=tmp_path / 'ref', K_b=4, search=SEARCH))
    expected = trials_of(reference.work_dir)
    assert set(expected) == {'prompt_search-round1', 'prompt_search-round2'}
    for trials in expected.values():
        assert len(trials) == 4 and all(state == TrialState.COMPLETE for *_, state in trials)
    # trial 2 is the first step: group 2 of the best warm-start point, + 0.25
    round1 = expected['prompt_search-round1']
    best = min(round1[:2], key=lambda t: (t[2], t[0]))[1]
    assert round1[2][1] == dict(best, w02=min(best['w02'] + 0.25, 3.0))
    assert isinstance(reference.train_loop.search, ToySweep)

    resumed = killed_in_search_and_resumed(loop_cfg, monkeypatch, round_idx=2, trial=3,
                                           work_dir=tmp_path / 'killed', K_b=4, search=SEARCH)
    assert trials_of(resumed.work_dir) == expected
    assert_same_weights(reference, resumed)


def test_its_settings_are_checked_before_the_run(loop_cfg):
    cfg = loop_cfg(search=dict(solver='toy_sweep', solver_kwargs=dict(step=-1.0)))
    with pytest.raises(ConfigError, match='toy_sweep takes a positive float step'):
        Runner.from_cfg(cfg).train()


def test_a_registered_solver_appears_in_search_compare(tiny_data, tmp_path):
    compare = load_tool('analysis/search_compare')
    cfg = tiny_bilevel_cfg(tiny_data)
    config = str(tmp_path / 'tiny_bilevel.py')
    cfg.dump(config)
    checkpoint = init_checkpoint(cfg, tmp_path)
    assert 'toy_sweep' in compare.parse_args([config, str(checkpoint)]).solvers
    out, = compare.main([config, str(checkpoint), '--solvers', 'toy_sweep',
                         '--objectives', 'bce', '--budget', '4', '--work-dir',
                         str(tmp_path / 'compare')])
    run_ = out['runs']['toy_sweep|bce']
    assert len(run_['trials']) == 4 and run_['ratio'][0] == 1.0
    assert out['correlation']['local']['points'] >= 3  # toy_sweep explores locally
