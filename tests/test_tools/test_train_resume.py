"""End to end through tools/train.py: a run SIGKILLed mid-search, while Optuna
writes a trial's parameters, resumes with --resume to the same trials, rho and
weights as an uninterrupted run (the killed run in a process of its own, the
others in the test's)."""
import glob
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from bipa.apis import load_rounds, run_cli
from bipa.utils import lock_work_dir
from tests.conftest import ROOT, load_tool

KILLER = textwrap.dedent('''
    import os, runpy, signal, sys
    from optuna.trial import Trial
    suggest = Trial._suggest

    def dying(self, name, distribution):
        # round 1, trial 1 (sampled): killed after 7 of its 16 parameters were written
        if self.study.study_name.endswith('round1') and self.number == 1 and name == 'w07':
            os.kill(os.getpid(), signal.SIGKILL)
        return suggest(self, name, distribution)

    Trial._suggest = dying
    sys.argv = ['tools/train.py'] + sys.argv[1:]
    runpy.run_path('tools/train.py', run_name='__main__')
''')


@pytest.fixture
def config(e2e_data):
    return e2e_data['config']


def train_killed(*args):
    """tools/train.py in a process of its own, SIGKILLed by :data:`KILLER`."""
    return subprocess.run([sys.executable, '-c', KILLER, *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})


def trials(work_dir):
    return {study.study_name: [(t.state.name, t.params, t.value) for t in study.trials]
            for study in load_rounds(osp.join(work_dir, 'prompt_search.db')).values()}


def final(work_dir):
    return torch.load(osp.join(work_dir, 'iter_6.pth'), weights_only=True)['state_dict']


def test_sigkill_mid_search_then_resume(config, tmp_path, monkeypatch):
    ref, killed = str(tmp_path / 'ref'), str(tmp_path / 'killed')
    # the uninterrupted run in this process (with the subprocesses' one thread)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    assert run_cli(load_tool('train').main, [config, '--work-dir', ref]) == 0

    dead = train_killed(config, '--work-dir', killed)
    assert dead.returncode == -9, dead.stderr[-3000:]
    partial = trials(killed)['prompt_search-round1']
    assert [s for s, _, _ in partial] == ['COMPLETE', 'RUNNING'] and len(partial[1][1]) == 7

    # the resume in this process too (the kill needs a process of its own)
    logs = set(glob.glob(osp.join(killed, '*', '*.log')))
    assert run_cli(load_tool('train').main, [config, '--work-dir', killed, '--resume']) == 0
    log, = set(glob.glob(osp.join(killed, '*', '*.log'))) - logs
    assert 'Resuming the adaptation phase at iteration 2' in open(log).read()
    resumed_trials, ref_trials = trials(killed), trials(ref)
    assert resumed_trials.keys() == ref_trials.keys()
    for name, ref_list in ref_trials.items():  # the interrupted trial is kept as FAIL
        assert [t for t in resumed_trials[name] if t[0] != 'FAIL'] == ref_list
    assert [s for s, _, _ in resumed_trials['prompt_search-round1']] == [
        'COMPLETE', 'FAIL', 'COMPLETE', 'COMPLETE']
    a, b = final(ref), final(killed)
    key = 'roi_head.mask_head.dense_prompt.group_weights'
    # rho is the last round's best trial (earliest on ties), identity or not
    last = [t for t in ref_trials['prompt_search-round2'] if t[0] == 'COMPLETE']
    best = min(last, key=lambda t: t[2])[1]
    torch.testing.assert_close(a[key], torch.tensor([best[f'w{g:02d}'] for g in range(16)]))
    assert torch.equal(a[key], b[key])
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_second_run_on_a_busy_work_dir_is_refused(config, tmp_path, capsys):
    """In-process: the work dir lock is a flock, which a second open file
    description of the same process cannot take either (another process is
    refused the same way: tests/test_utils/test_work_dir_lock.py)."""
    work_dir = str(tmp_path / 'busy')
    handle = lock_work_dir(work_dir)
    try:
        code = run_cli(load_tool('train').main, [config, '--work-dir', work_dir])
    finally:
        handle.close()
    assert code == 2
    assert f'error: work dir {work_dir} is in use by another run (pid' in capsys.readouterr().err
