"""Two CPU processes (gloo) through tools/dist_train.sh: a short bilevel run
with a search on rank 0, rho broadcast, and batch-norm statistics averaged."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import mmengine
import torch
from optuna.trial import TrialState

from bipa.apis import load_rounds
from tests.conftest import ROOT


def test_two_cpu_processes_train_the_same_model(e2e_data, tmp_path):
    cfg = tmp_path / 'dist.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = ['{e2e_data["config"]}']
        custom_imports = dict(imports=['bipa', 'tests.test_tools.rank_state_probe'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='SyncNormStatsHook'), dict(type='DumpRankStateHook')]
        train_dataloader = dict(batch_size=1)
        # identity is outside B: rank 0's rho differs from rank 1's initial ones
        model = dict(roi_head=dict(mask_head=dict(dense_prompt=dict(search_interval=(1.5, 3.0)))))
    '''))
    work_dir = str(tmp_path / 'work')
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PORT': '29517',
           'PATH': osp.dirname(sys.executable) + os.pathsep + os.environ['PATH']}
    proc = subprocess.run(['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir', work_dir],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # only rank 0 searched: exactly K_b trials per round
    rounds = load_rounds(osp.join(work_dir, 'prompt_search.db'))
    assert list(rounds) == [1, 2]
    for study in rounds.values():
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3

    # both ranks end with the same rho, weights and batch-norm statistics
    rank0, rank1 = (torch.load(osp.join(work_dir, f'rank{r}.pth'), weights_only=True)
                    for r in (0, 1))
    best = rounds[2].best_params
    torch.testing.assert_close(rank0['roi_head.mask_head.dense_prompt.group_weights'],
                               torch.tensor([best[f'w{g:02d}'] for g in range(16)]))
    trained_bn = 'local_backbone.bn1.running_mean'  # the demo trains its local ResNet
    assert rank0[trained_bn].abs().sum() > 0
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    # tools/dist_test.sh: the two ranks test the checkpoint, rank 0 gathers
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    preds = tmp_path / 'preds.pkl'
    proc = subprocess.run(['bash', 'tools/dist_test.sh', str(cfg), checkpoint, '2',
                           '--work-dir', str(tmp_path / 'test'), '--out', str(preds)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = mmengine.load(preds)
    test_json = mmengine.load(osp.join(e2e_data['data'], 'annotations', 'test.json'))
    assert sorted(r['img_id'] for r in results) == sorted(i['id'] for i in test_json['images'])
    assert all('masks' in r['pred_instances'] for r in results)
