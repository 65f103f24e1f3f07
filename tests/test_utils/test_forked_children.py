"""DataLoader workers end with their trainer, however it ends, and leave the
trainer's stop signals to it."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from tests.conftest import ROOT

TRAINER = textwrap.dedent('''
    import os, runpy, signal, sys, time
    import torch
    from mmengine.dataset import worker_init_fn
    from functools import partial
    from torch.utils.data import DataLoader
    # the module alone, not the bipa package (whose imports take seconds)
    guard_forked_children = runpy.run_path(sys.argv[3])['guard_forked_children']

    class Slow(torch.utils.data.Dataset):
        def __len__(self):
            return 1000

        def __getitem__(self, i):
            if i > 1:  # stuck reading (a slow file system): torch's watchdog, which
                time.sleep(60)  # ends a worker whose trainer died, waits for it
            return torch.rand(1)  # seeded by mmengine's worker_init_fn

    if sys.argv[1] == 'guarded':
        guard_forked_children()
    loader = DataLoader(Slow(), num_workers=2, persistent_workers=True,
                        worker_init_fn=partial(worker_init_fn, num_workers=2, rank=0, seed=5))
    it = iter(loader)
    first = next(it)
    time.sleep(0.5)  # both workers stuck in their next item
    print(' '.join(str(w.pid) for w in it._workers), float(first), flush=True)
    if sys.argv[2] == 'SIGTERM':  # the cluster signals the whole job: workers too
        signal.signal(signal.SIGTERM, lambda *args: None)  # the trainer's stop handler
        os.killpg(0, signal.SIGTERM)
        time.sleep(0.5)
        print(' '.join(str(w.is_alive()) for w in it._workers), flush=True)
    if sys.argv[2] == 'exit':  # a normal end, persistent workers alive
        sys.exit(0)
    os.kill(os.getpid(), signal.SIGKILL)
''')


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:  # a zombie is gone
        return f.read().split(')')[-1].split()[0] != 'Z'


def trainer(guarded, signal_name='none'):
    # a session of its own: the SIGTERM to its process group reaches no one else
    proc = subprocess.run([sys.executable, '-c', TRAINER, guarded, signal_name,
                           str(ROOT / 'bipa' / 'utils' / 'launcher.py')], cwd=ROOT,
                          capture_output=True, text=True, timeout=40, start_new_session=True,
                          env={**os.environ, 'PYTHONPATH': str(ROOT)})
    lines = proc.stdout.split('\n')
    *pids, value = lines[0].split()
    return proc, [int(p) for p in pids], float(value), lines[1:]


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl is Linux only')
def test_workers_outlive_a_stop_signal_and_die_with_a_kill_9():
    """The job's SIGTERM leaves the workers to their trainer; its kill -9 ends
    them at once, even stuck in an item (unguarded, they held the trainer's
    stdout for the 60 s of the item, past this helper's timeout)."""
    proc, pids, value, lines = trainer('guarded', 'SIGTERM')
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert lines[0] == 'True True'  # both workers alive after the SIGTERM
    deadline = time.time() + 10
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    survivors = [p for p in pids if alive(p)]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    assert not survivors
    # mmengine's worker seeding still ran: worker 0's seed is 2 * rank 0 + 0 + seed 5
    torch.manual_seed(5)
    assert value == float(torch.rand(1))


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl is Linux only')
def test_a_guarded_trainer_exits_normally_with_persistent_workers():
    """multiprocessing's exit handler SIGTERMs daemonic workers and joins them:
    with SIGTERM blocked in them the trainer would hang there."""
    proc, pids, _, _ = trainer('guarded', 'exit')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not any(alive(p) for p in pids)
