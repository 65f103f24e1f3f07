"""A stop signal (SIGTERM: a cluster's preemption or time limit) ends training
after the current iteration or search trial with a checkpoint and exit code
75; --resume then finishes bitwise equal to an uninterrupted run."""
import os
import os.path as osp
import signal

import pytest
import torch

from bipa.apis import load_rounds, run_cli
from bipa.engine import BaseSolver, BilevelConfig
from bipa.engine.stop_signal import STOPPED_EXIT_CODE, StopSignals, TrainingStopped
from tests.conftest import load_tool
from tests.test_engine.conftest import assert_same_weights, run_loop


def trials(work_dir):
    return {r: [(t.state.name, t.params, t.value) for t in study.trials]
            for r, study in load_rounds(osp.join(work_dir, 'prompt_search.db')).items()}


def test_a_signal_mid_adaptation_stops_with_a_checkpoint(loop_cfg, reference_run, tmp_path,
                                                         monkeypatch, capsys):
    """Through tools/train.py: SIGTERM in iteration 3 (round 2's first)."""
    name = 'SIGTERM'
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # the reference's threads
    cfg = loop_cfg(stop_signals=['SIGTERM', 'SIGUSR1'])
    resume_cfg, signalled_cfg = tmp_path / 'run.py', tmp_path / 'signalled.py'
    cfg.dump(str(resume_cfg))
    cfg.custom_imports.imports.append('tests.test_tools.rank_state_probe')
    cfg.custom_hooks = [dict(type='SignalAtHook', iteration=3, signal=name)]
    cfg.dump(str(signalled_cfg))
    train = load_tool('train').main
    work_dir = tmp_path / 'work'

    assert run_cli(train, [str(signalled_cfg), '--work-dir', str(work_dir)]) == \
        STOPPED_EXIT_CODE == 75
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'stopped: stopped by {name} after iteration 3 of 6: '
                   f'{work_dir / "iter_3.pth"} written; run again with --resume to continue']
    assert open(work_dir / 'last_checkpoint').read() == str(work_dir / 'iter_3.pth')
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are restored

    assert run_cli(train, [str(resume_cfg), '--work-dir', str(work_dir), '--resume']) == 0
    state = torch.load(work_dir / 'iter_6.pth', weights_only=True)['state_dict']
    for key, value in reference_run.model.state_dict().items():
        assert torch.equal(state[key], value), key


def test_stop_signals_are_configurable_and_restored():
    before = signal.getsignal(signal.SIGUSR1)
    with StopSignals(['SIGUSR1']) as stop:
        assert stop.received() is None
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.received() == 'SIGUSR1'
    assert signal.getsignal(signal.SIGUSR1) is before
    with pytest.raises(ValueError, match=r"train_cfg\.stop_signals must be a list of signal "
                       r"names among \('SIGTERM', 'SIGUSR1', 'SIGUSR2', 'SIGINT'\), got "
                       r"\['SIGKILL'\]"):
        BilevelConfig.from_cfg(dict(stop_signals=['SIGKILL']))


def test_a_signal_mid_search_stops_after_the_trial(loop_cfg, reference_run, tmp_path,
                                                   monkeypatch):
    """SIGTERM while round 2's trial 1 is scored: that trial finishes and is
    stored, the run stops, and the resume runs the round's other trials."""
    evaluate = BaseSolver._evaluate

    def signalled(self, study, round_idx, number, objective):
        if round_idx == 2 and number == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(self, study, round_idx, number, objective)

    work_dir = tmp_path / 'work'
    monkeypatch.setattr(BaseSolver, '_evaluate', signalled)
    with pytest.raises(TrainingStopped, match="round 2's search"):
        run_loop(loop_cfg(work_dir=work_dir))
    monkeypatch.setattr(BaseSolver, '_evaluate', evaluate)
    assert [t[0] for t in trials(work_dir)[2]] == ['COMPLETE', 'COMPLETE']
    assert open(work_dir / 'last_checkpoint').read() == str(work_dir / 'iter_4.pth')
    cfg = loop_cfg(work_dir=work_dir)
    cfg.resume = True
    assert_same_weights(reference_run, run_loop(cfg))
    assert trials(work_dir) == trials(reference_run.work_dir)
