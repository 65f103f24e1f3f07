"""kill -9 of tools/dist_train.sh's process group ends its torchrun workers,
which torchrun starts in sessions of their own."""
import glob
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap
import time

from tests.conftest import ROOT


def workers(marker: str) -> list:
    """Pids of the processes whose command line holds ``marker``."""
    out = subprocess.run(['pgrep', '-f', marker], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def test_kill_9_of_the_launcher_group_ends_the_workers(e2e_data, tmp_path):
    cfg = tmp_path / 'long.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = ['{e2e_data["config"]}']
        train_cfg = dict(T=1000)
    '''))
    work_dir = str(tmp_path / 'work')  # unique: it marks the workers' command lines
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PORT': '29519',
           'PATH': osp.dirname(sys.executable) + os.pathsep + os.environ['PATH']}
    log = tmp_path / 'launcher.log'
    with open(log, 'w') as out:
        launcher = subprocess.Popen(
            ['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir', work_dir], cwd=ROOT,
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # rank 0 logs after both ranks joined the process group
        deadline = time.monotonic() + 120
        while not glob.glob(osp.join(work_dir, '*', '*.log')):
            assert launcher.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, 'no log after 120 s'
            time.sleep(0.5)
        assert len(workers(work_dir)) >= 2  # torchrun's two workers (and torchrun)
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 10  # none alive 10 s later (at once, in practice)
        while workers(work_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers(work_dir) == []
    finally:
        for pid in workers(work_dir):
            os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


def test_a_worker_whose_torchrun_has_ended_stops():
    """torchrun killed before the worker asked for the parent-death signal."""
    code = ('import importlib.util as u; '
            's = u.spec_from_file_location("l", "bipa/utils/launcher.py"); '
            'm = u.module_from_spec(s); s.loader.exec_module(m); print(m.die_with_launcher())')
    for launcher, rc in ((os.getpid(), 0), (os.getpid() + 100000, 1)):
        proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, 'BIPA_LAUNCHER_PID': str(launcher)})
        assert proc.returncode == rc, proc.stderr
    assert proc.stderr.startswith(f'torchrun (pid {launcher}) has ended; worker ')
