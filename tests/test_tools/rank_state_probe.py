"""Imported by the configs of the distributed tests: each rank saves its final
model state, so that the tests can compare the ranks and the runs; rank 0
copies what a kill at a given iteration would leave, for a resume; a rank
sends itself a signal."""
import os
import os.path as osp
import shutil
import signal as signal_module

import torch
from mmdet.registry import HOOKS
from mmengine.dist import barrier, get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class DumpRankStateHook(Hook):
    priority = 'LOWEST'

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(model.state_dict(), osp.join(runner.work_dir, f'rank{get_rank()}.pth'))


@HOOKS.register_module()
class SnapshotAtHook(Hook):
    """Before training iteration ``iteration + 1``, once every rank got there
    (rank 0 has written the previous iteration's checkpoint), rank 0 copies
    the files of the work dir (checkpoints, ``last_checkpoint``, the search's
    storage, the lock file) to ``snapshot_dir``, as a SIGKILL there would leave
    them, with ``last_checkpoint`` naming the copy; the run goes on."""

    priority = 'HIGHEST'

    def __init__(self, iteration: int, snapshot_dir: str) -> None:
        self.iteration, self.snapshot_dir = iteration, snapshot_dir

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter != self.iteration:
            return
        barrier()
        if get_rank() == 0:
            os.makedirs(self.snapshot_dir)
            for entry in os.scandir(runner.work_dir):
                if entry.is_file():
                    shutil.copy(entry.path, self.snapshot_dir)
            pointer = osp.join(self.snapshot_dir, 'last_checkpoint')
            with open(pointer) as f:
                name = osp.basename(f.read().strip())
            with open(pointer, 'w') as f:
                f.write(osp.join(self.snapshot_dir, name))
        barrier()


@HOOKS.register_module()
class SignalAtHook(Hook):
    """The process sends itself ``signal`` (a name) at the start of training
    iteration ``iteration`` (1-based), as a cluster's preemption would."""

    priority = 'HIGHEST'

    def __init__(self, iteration: int, signal: str = 'SIGTERM') -> None:
        self.iteration, self.signal = iteration, getattr(signal_module, signal)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), self.signal)
