"""Imported by the configs of the distributed tests: each rank saves its final
model state, so that the tests can compare the ranks and the runs; and every
rank SIGKILLs itself at a given iteration, for a resume."""
import os
import os.path as osp
import signal
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
class SigkillAtHook(Hook):
    """Every rank SIGKILLs itself before training iteration ``iteration + 1``,
    once all ranks got there (rank 0 has written the previous iteration's
    checkpoint)."""

    priority = 'HIGHEST'

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter == self.iteration:
            barrier()
            os.kill(os.getpid(), signal.SIGKILL)


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
