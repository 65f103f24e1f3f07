import atexit
import ctypes
import multiprocessing
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LAUNCHER_PID = 'BIPA_LAUNCHER_PID'  # set by tools/dist_train.sh: the pid of its torchrun
# what a forked child blocks: the parent's stop signals (bipa.engine.stop_signal)
CHILD_BLOCKS = {signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2}
_forking_pid = None
_guarded = False


def _set_parent_death_signal(signum: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), 'prctl(PR_SET_PDEATHSIG) failed')


def _before_fork() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _guard_child() -> None:
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != _forking_pid:  # the parent ended before the line above
        os._exit(1)
    # blocked, not ignored: torch's DataLoader worker installs its own SIGTERM handler
    signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_BLOCKS)


def guard_forked_children() -> bool:
    """From now on, every process this one forks (DataLoader workers under
    the ``'fork'`` start method, the default runtime's ``env_cfg.mp_cfg``)
    is SIGKILLed by the kernel when this process ends, however it ends
    (``kill -9`` included), and blocks SIGTERM, SIGUSR1 and SIGUSR2: a
    cluster signals every process of a job, and this process decides when
    to stop (:class:`bipa.engine.stop_signal.StopSignals`); at this
    process's normal exit its daemonic children (persistent workers) are
    SIGKILLed rather than SIGTERMed. Composes with any
    ``worker_init_fn`` (mmengine's seeding): it runs at the fork, before it.
    Linux only; elsewhere nothing (returns False)."""
    global _guarded
    if not sys.platform.startswith('linux'):
        return False
    if not _guarded:
        os.register_at_fork(before=_before_fork, after_in_child=_guard_child)
        # before multiprocessing's own exit handler (atexit runs last-registered first),
        # which would SIGTERM its daemonic children, blocked here, and join them forever
        atexit.register(_kill_daemonic_children)
        _guarded = True
    return True


def _kill_daemonic_children() -> None:
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()


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
    _set_parent_death_signal(signal.SIGKILL)
    launcher = os.environ.get(LAUNCHER_PID)
    if launcher and int(launcher) != os.getppid():
        sys.exit(f'torchrun (pid {launcher}) has ended; worker {os.getpid()} stops')
    return True
