"""Stop training on a signal (a cluster's preemption or time limit) after a
checkpoint, instead of at once."""
import signal
import threading
from typing import Optional, Sequence

import torch
from mmengine.dist import all_reduce, get_world_size

# EX_TEMPFAIL: stopped on a signal with a checkpoint written; run again with --resume
STOPPED_EXIT_CODE = 75


class TrainingStopped(Exception):
    """Training stopped on a stop signal, its state saved; the tools print the
    message and exit with :data:`STOPPED_EXIT_CODE`."""

    exit_code = STOPPED_EXIT_CODE


class StopSignals:
    """While entered (from the main thread), the named signals (e.g.
    ``('SIGTERM', 'SIGUSR1')``) are recorded instead of ending the process;
    :meth:`received` says whether one came. Leaving restores the previous
    handlers. Off the main thread, where Python cannot install handlers,
    it does nothing."""

    def __init__(self, names: Sequence[str]) -> None:
        self.signals = [getattr(signal, name) for name in names]
        self.signum = 0
        self._previous: dict = {}

    def _record(self, signum: int, frame) -> None:
        self.signum = signum

    def __enter__(self) -> 'StopSignals':
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._record) for s in self.signals}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def received(self, *, every_rank: bool = True) -> Optional[str]:
        """The name of the stop signal received, or ``None``. With
        ``every_rank`` (a collective in a distributed run: every rank calls
        it) a signal to any rank counts for all, so that they stop together."""
        signum = self.signum
        if every_rank and get_world_size() > 1:
            flag = torch.tensor([signum], dtype=torch.int64)
            all_reduce(flag, op='max')
            signum = int(flag.item())
        return signal.Signals(signum).name if signum else None
