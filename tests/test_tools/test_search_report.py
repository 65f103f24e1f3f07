"""tools/analysis/search_report.py on a search that the TPE solver ran with a
cheap objective, in the SQLite layout a training run leaves."""
import re

import numpy as np
import pytest
from optuna.trial import TrialState

from bipa.engine.solvers import TPESolver
from tests.conftest import load_tool

GROUPS = 4
# ' {*| }{number} {state} f={value or -}  w=[{weights}]' and '  ({fail reason})'
LINE = re.compile(r' ([ *])\s*(\d+) (\w+)\s+f=\s*(\S+)  w=\[([^\]]*)\](?:  \((.*)\))?')


def sphere(weights):
    return float(np.square(np.array(weights) - 2.0).sum())


@pytest.fixture(scope='module')
def search(tmp_path_factory):
    """Two rounds as BilevelLoop runs them (warm-started with the previous best
    and the identity), f a cheap function of the weights whose 3rd call fails,
    in ``prompt_search.db``; and another prefix's study beside them."""
    db = tmp_path_factory.mktemp('search') / 'prompt_search.db'
    calls = []

    def objective(weights):
        calls.append(weights)
        if len(calls) == 3:
            raise ValueError('simulated bad batch')
        return sphere(weights)

    def at(prefix):
        return TPESolver(storage=f'sqlite:///{db}', study_name=prefix, num_groups=GROUPS,
                         interval=(1.0, 3.0), seed=0)
    search = at('prompt_search')
    best, _ = search.run_round(1, 4, objective, warm_start=[[1.0] * GROUPS])
    search.run_round(2, 3, objective, warm_start=[best, [1.0] * GROUPS])
    at('other').run_round(1, 2, objective)
    return db, search


def test_report_lists_every_trial_and_marks_the_best(search, tmp_path, capsys):
    db, search = search
    png = tmp_path / 'history.png'
    rounds = load_tool('analysis/search_report').main([str(db), '--out', str(png)])
    out = capsys.readouterr().out.splitlines()
    assert list(rounds) == [1, 2]
    assert png.stat().st_size > 1000
    assert out[-1] == f'optimisation history saved to {png}'
    for round_idx, count in ((1, 4), (2, 3)):
        header = out.index(f'round {round_idx} (prompt_search-round{round_idx}): '
                           f'{count} trials')
        rows = [LINE.fullmatch(line) for line in out[header + 1:header + 1 + count]]
        assert all(rows), out
        study = rounds[round_idx]
        # the round's rho: least f, earliest on ties
        best = min((t.value, t.number) for t in study.trials if t.state == TrialState.COMPLETE)
        for number, row in enumerate(rows):
            mark, shown, state, f, weights, reason = row.groups()
            weights = [float(w) for w in weights.split()]
            assert int(shown) == number and len(weights) == GROUPS
            if state == 'COMPLETE':  # f is the objective at the trial's weights
                assert float(f) == pytest.approx(sphere(weights), abs=1e-2) and reason is None
            else:
                assert (state, f, reason) == ('FAIL', '-', 'ValueError: simulated bad batch')
            assert weights == pytest.approx(search.weights_of(study.trials[number].params),
                                            abs=5e-4)
            assert (mark == '*') == (number == best[1]), row.string
    states = [row.group(3) for row in map(LINE.fullmatch, out[1:5])]
    assert states == ['COMPLETE', 'COMPLETE', 'FAIL', 'COMPLETE']  # round 1: the 3rd failed
    assert rounds[1].trials[2].user_attrs == {'fail_reason': 'ValueError: simulated bad batch'}
    # round 1 starts at the identity, round 2 at round 1's best
    assert search.weights_of(rounds[1].trials[0].params) == [1.0] * GROUPS
    assert search.weights_of(rounds[2].trials[0].params) == search.best(1)[0]


def test_report_of_another_prefix_and_default_output(search, capsys):
    db, _ = search
    rounds = load_tool('analysis/search_report').main([str(db), '--study-name', 'other'])
    out = capsys.readouterr().out
    assert list(rounds) == [1] and 'round 1 (other-round1): 2 trials' in out
    assert 'prompt_search-round' not in out
    assert (db.parent / 'search_history.png').stat().st_size > 1000  # beside the database


def test_missing_database_or_study(search, tmp_path):
    report = load_tool('analysis/search_report')
    with pytest.raises(FileNotFoundError, match='nope.db'):
        report.main([str(tmp_path / 'nope.db')])
    with pytest.raises(ValueError, match='no study named nothing-round<N>'):
        report.main([str(search[0]), '--study-name', 'nothing'])
