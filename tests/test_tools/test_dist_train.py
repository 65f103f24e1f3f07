"""Two CPU processes (gloo) through tools/dist_train.sh: a short bilevel run
with a search on rank 0, rho broadcast, and batch-norm statistics averaged;
what the same run leaves when it is killed mid-adaptation (a copy of its work
dir taken there) resumes to the same model. That a SIGKILL of the launcher
ends its workers: tests/test_tools/test_launcher_kill.py.

``BIPA_DIST_RANKS=3 pytest tests/test_tools/test_dist_train.py`` runs the
same tests with 3 processes (about a minute more; not in CI): with 3 or more,
gloo's sum depends on DDP's bucket layout (bipa.utils.setup_launcher)."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import mmengine
import pytest
import torch
from optuna.trial import TrialState

from bipa.apis import load_rounds
from tests.conftest import ROOT

RANKS = int(os.environ.get('BIPA_DIST_RANKS', 2))


def dist_train(cfg, work_dir, port, *args):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PORT': str(port),
           'PATH': osp.dirname(sys.executable) + os.pathsep + os.environ['PATH']}
    return subprocess.run(['bash', 'tools/dist_train.sh', str(cfg), str(RANKS), '--work-dir',
                           str(work_dir), *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=150)


def rank_states(work_dir):
    return [torch.load(osp.join(work_dir, f'rank{r}.pth'), weights_only=True) for r in range(RANKS)]


@pytest.fixture(scope='module')
def two_rank_run(e2e_data, tmp_path_factory):
    """The uninterrupted two-rank run, shared by the tests of this module: its
    config, work dir and environment."""
    tmp = tmp_path_factory.mktemp('dist')
    cfg, snapshot_cfg = tmp / 'dist.py', tmp / 'dist_snapshot.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = ['{e2e_data["config"]}']
        custom_imports = dict(imports=['bipa', 'tests.test_tools.rank_state_probe'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='SyncNormStatsHook'), dict(type='DumpRankStateHook')]
        train_dataloader = dict(batch_size=1)
        # identity is outside B: rank 0's rho differs from rank 1's initial ones
        model = dict(roi_head=dict(mask_head=dict(dense_prompt=dict(search_interval=(1.5, 3.0)))))
        # a checkpoint mid-adaptation (round 2 is iterations 3 and 4), for the resume
        default_hooks = dict(checkpoint=dict(interval=3))
    '''))
    # what a kill before iteration 4 (round 2's second) would leave, for the resume
    snapshot = tmp / 'killed_at_3'
    snapshot_cfg.write_text(textwrap.dedent(f'''
        _base_ = ['{cfg}']
        custom_hooks = [dict(type='SyncNormStatsHook'), dict(type='DumpRankStateHook'),
                        dict(type='SnapshotAtHook', iteration=3, snapshot_dir='{snapshot}')]
    '''))
    work_dir = tmp / 'work'
    proc = dist_train(snapshot_cfg, work_dir, 29517)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(cfg=cfg, work_dir=str(work_dir), snapshot=snapshot)


def test_two_cpu_processes_train_the_same_model(two_rank_run, e2e_data, tmp_path):
    cfg, work_dir = two_rank_run['cfg'], two_rank_run['work_dir']
    # only rank 0 searched: exactly K_b trials per round
    rounds = load_rounds(osp.join(work_dir, 'prompt_search.db'))
    assert list(rounds) == [1, 2]
    for study in rounds.values():
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3

    # every rank ends with the same rho, weights and batch-norm statistics
    rank0, *others = rank_states(work_dir)
    best = rounds[2].best_params
    torch.testing.assert_close(rank0['roi_head.mask_head.dense_prompt.group_weights'],
                               torch.tensor([best[f'w{g:02d}'] for g in range(16)]))
    trained_bn = 'local_backbone.bn1.running_mean'  # the demo trains its local ResNet
    assert rank0[trained_bn].abs().sum() > 0
    for other in others:
        assert rank0.keys() == other.keys()
        for key in rank0:
            assert torch.equal(rank0[key], other[key]), key

    # tools/dist_test.sh: the two ranks test the checkpoint, rank 0 gathers
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    preds = tmp_path / 'preds.pkl'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PORT': '29517',
           'PATH': osp.dirname(sys.executable) + os.pathsep + os.environ['PATH']}
    proc = subprocess.run(['bash', 'tools/dist_test.sh', str(cfg), checkpoint, str(RANKS),
                           '--work-dir', str(tmp_path / 'test'), '--out', str(preds)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = mmengine.load(preds)
    test_json = mmengine.load(osp.join(e2e_data['data'], 'annotations', 'test.json'))
    assert sorted(r['img_id'] for r in results) == sorted(i['id'] for i in test_json['images'])
    assert all('masks' in r['pred_instances'] for r in results)


def test_a_run_killed_mid_adaptation_resumes_to_the_same_model(two_rank_run):
    """Each rank resumes with its own RNG states: the ranks' differ at the
    checkpoint (they draw for different images), and rank 0's on both ranks
    would sample other RoIs on rank 1 and end with other weights."""
    work_dir = two_rank_run['snapshot']
    assert not osp.exists(work_dir / 'iter_4.pth') and not osp.exists(work_dir / 'rank0.pth')
    checkpoint = torch.load(work_dir / 'iter_3.pth', weights_only=False)
    rng = checkpoint['bilevel_loop']['rng']
    assert len(rng) == RANKS and not torch.equal(rng[0]['torch'], rng[1]['torch'])

    resumed = dist_train(two_rank_run['cfg'], work_dir, 29522, '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Resuming the adaptation phase at iteration 3' in resumed.stdout + resumed.stderr
    for reference, state in zip(rank_states(two_rank_run['work_dir']), rank_states(work_dir)):
        assert reference.keys() == state.keys()
        for key in reference:
            assert torch.equal(reference[key], state[key]), key
