import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LAUNCHER_PID = 'BIPA_LAUNCHER_PID'  # set by tools/dist_train.sh: the pid of its torchrun


def die_with_launcher() -> bool:
    """Let the kernel SIGKILL this process when its parent, torchrun's agent,
    ends: torchrun starts each worker in a new session, where a signal to the
    launcher's process group does not reach it, and a worker outliving a
    killed (``kill -9``) torchrun would finish its run as an orphan holding
    the work dir's lock. Linux only; elsewhere nothing (returns False).

    ``tools/dist_train.sh`` ``exec``s torchrun, so torchrun is in the
    script's process group, and names its pid in ``BIPA_LAUNCHER_PID``: a
    worker whose parent is already another process (torchrun ended before
    this call) exits at once.
    """
    if not sys.platform.startswith('linux'):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), 'prctl(PR_SET_PDEATHSIG) failed')
    launcher = os.environ.get(LAUNCHER_PID)
    if launcher and int(launcher) != os.getppid():
        sys.exit(f'torchrun (pid {launcher}) has ended; worker {os.getpid()} stops')
    return True
