"""tools/slurm_train.sh with a stand-in srun: the stop signal is asked for
ahead of the time limit, and a stopped run (exit 75) is resumed RESTARTS times."""
import os
import subprocess

from tests.conftest import ROOT

FAKE_SRUN = '''#!/usr/bin/env bash
echo "$@" >> "$CALLS"
n=$(wc -l < "$CALLS")
[ "$n" -le "$STOPS" ] && exit 75
exit 0
'''


def slurm_train(tmp_path, stops, restarts):
    (tmp_path / 'srun').write_text(FAKE_SRUN)
    (tmp_path / 'srun').chmod(0o755)
    calls = tmp_path / 'calls'
    env = {**os.environ, 'PATH': f'{tmp_path}:{os.environ["PATH"]}', 'CALLS': str(calls),
           'STOPS': str(stops), 'RESTARTS': str(restarts), 'STOP_AHEAD': '120'}
    proc = subprocess.run(['bash', 'tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'wd',
                           '--amp'], cwd=ROOT, env=env, capture_output=True, text=True)
    return proc.returncode, calls.read_text().splitlines()


def test_a_stopped_run_is_resumed(tmp_path):
    code, calls = slurm_train(tmp_path, stops=2, restarts=3)
    assert code == 0 and len(calls) == 3
    assert all('--signal=TERM@120' in c for c in calls)
    assert calls[0].endswith('--launcher slurm --amp')
    assert calls[1].endswith('--launcher slurm --amp --resume') and calls[2] == calls[1]


def test_no_restart_left_returns_the_stop_code(tmp_path):
    code, calls = slurm_train(tmp_path, stops=5, restarts=1)
    assert code == 75 and len(calls) == 2
