"""How the command-line tools report the errors a user can fix."""
import os
import re
import sys
from typing import Callable, List, Optional

import torch

from ..datasets import AnnotationError, HoldoutError, ImageReadError
from ..engine.stop_signal import TrainingStopped
from ..models import SAMCheckpointError
from ..utils import ConfigError, WorkDirBusyError


def user_errors() -> tuple:
    """The errors that describe bad input (files, data, checkpoints, work dir),
    each with a message that names what to fix."""
    return (AnnotationError, HoldoutError, ImageReadError, SAMCheckpointError,
            WorkDirBusyError, ConfigError, FileNotFoundError)


def cpu_threads() -> Optional[int]:
    """torch's thread count for a run on the CPU, or ``None`` to leave it.

    ``OMP_NUM_THREADS`` when set (torch follows it already); otherwise the CPUs
    this process may use minus the busy ones (the 1-minute load average),
    shared among the processes torchrun starts on this machine, at least 1.
    torch's default (every core) oversubscribes a machine where another job
    runs: 3-12 s against 0.3 s per demo iteration on 2 cores.
    """
    if os.environ.get('OMP_NUM_THREADS') or torch.cuda.is_available():
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    busy = round(os.getloadavg()[0]) if hasattr(os, 'getloadavg') else 0
    return max(1, (cpus - busy) // int(os.environ.get('LOCAL_WORLD_SIZE', 1)))


def run_cli(main: Callable, argv: Optional[List[str]] = None) -> int:
    """Run a tool's ``main(argv)`` with :func:`cpu_threads` torch threads; a
    user error prints as one line, ``error: <message>``, on stderr and returns
    2. ``--debug`` (or ``BIPA_DEBUG=1``) lets it raise with its traceback.
    Training stopped by a stop signal (its checkpoint written) prints its line
    and returns 75 (:data:`bipa.engine.stop_signal.STOPPED_EXIT_CODE`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get('BIPA_DEBUG') == '1' or '--debug' in argv
    argv = [a for a in argv if a != '--debug']
    threads, previous = cpu_threads(), torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        main(argv)
    except TrainingStopped as stop:
        print(f'stopped: {stop}', file=sys.stderr)
        return stop.exit_code
    except user_errors() as err:
        if debug:
            raise
        # mmengine's registry prefixes "class `X` in module.py: " per nesting level
        message = re.sub(r'class `\w+` in [\w./-]+\.py: ', '', ' '.join(str(err).split()))
        print(f'error: {message} (--debug shows the traceback)', file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(previous)
    return 0
