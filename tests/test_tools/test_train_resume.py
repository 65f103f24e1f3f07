"""End to end through tools/train.py: a run SIGKILLed mid-search, while Optuna
writes a trial's parameters, resumes with --resume to the same trials, rho and
weights as an uninterrupted run."""
import os.path as osp
import subprocess
import sys
import textwrap

import optuna
import pytest
import torch

from bipa.datasets import generate_synthetic_dataset
from bipa.utils import lock_work_dir
from tests.conftest import ROOT

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


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('e2e')
    data = tmp / 'data'
    generate_synthetic_dataset(data, splits=dict(train=10, val=2, test=2), image_size=(64, 64),
                               seed=1, progress=False)
    cfg = tmp / 'tiny_bilevel.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = ['{ROOT}/configs/bipa_demo_synthetic.py']
        data_root = '{data}/'
        model = dict(sam_checkpoint=None, data_preprocessor=dict(pad_size_divisor=64))
        train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
        test_dataloader = dict(dataset=dict(data_root=data_root))
        test_evaluator = dict(ann_file=data_root + 'annotations/test.json')
        val_dataloader = None
        val_cfg = None
        val_evaluator = None
        train_cfg = dict(T=2, K_a=2, K_b=3, K_c=2, unit='iter',
                         holdout=dict(_delete_=True, count=3, seed=0),
                         search=dict(batch_size=2))
        default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000),
                             visualization=dict(draw=False))
    '''))
    return str(cfg)


def train(*args, script=None):
    cmd = [sys.executable] + (['-c', script] if script else ['tools/train.py'])
    return subprocess.run(cmd + list(args), cwd=ROOT, capture_output=True, text=True,
                          env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})


def trials(work_dir):
    storage = 'sqlite:///' + osp.join(work_dir, 'prompt_search.db')
    return {s.study_name: [(t.state.name, t.params, t.value) for t in
                           optuna.load_study(study_name=s.study_name, storage=storage).trials]
            for s in optuna.get_all_study_summaries(storage)}


def final(work_dir):
    return torch.load(osp.join(work_dir, 'iter_6.pth'), weights_only=True)['state_dict']


def test_sigkill_mid_search_then_resume(config, tmp_path):
    ref, killed = str(tmp_path / 'ref'), str(tmp_path / 'killed')
    done = train(config, '--work-dir', ref)
    assert done.returncode == 0, done.stderr[-3000:]

    dead = train(config, '--work-dir', killed, script=KILLER)
    assert dead.returncode == -9, dead.stderr[-3000:]
    partial = trials(killed)['prompt_search-round1']
    assert [s for s, _, _ in partial] == ['COMPLETE', 'RUNNING'] and len(partial[1][1]) == 7

    resumed = train(config, '--work-dir', killed, '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Resuming the adaptation phase at iteration 2' in resumed.stdout + resumed.stderr
    resumed_trials, ref_trials = trials(killed), trials(ref)
    assert resumed_trials.keys() == ref_trials.keys()
    for name, ref_list in ref_trials.items():  # the interrupted trial is kept as FAIL
        assert [t for t in resumed_trials[name] if t[0] != 'FAIL'] == ref_list
    assert [s for s, _, _ in resumed_trials['prompt_search-round1']] == [
        'COMPLETE', 'FAIL', 'COMPLETE', 'COMPLETE']
    a, b = final(ref), final(killed)
    key = 'roi_head.mask_head.dense_prompt.group_weights'
    assert not torch.equal(a[key], torch.ones(16)) and torch.equal(a[key], b[key])
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_second_run_on_a_busy_work_dir_is_refused(config, tmp_path):
    work_dir = str(tmp_path / 'busy')
    handle = lock_work_dir(work_dir)
    try:
        proc = train(config, '--work-dir', work_dir)
    finally:
        handle.close()
    assert proc.returncode != 0
    assert f'work dir {work_dir} is in use by another run (pid' in proc.stderr
