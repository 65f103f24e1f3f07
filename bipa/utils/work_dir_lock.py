import fcntl
import os
import os.path as osp
import socket
from typing import IO


class WorkDirBusyError(RuntimeError):
    """Another run holds the work dir."""


def lock_work_dir(work_dir: str) -> IO:
    """Take an exclusive lock on ``work_dir`` for this process.

    Returns the open lock file; the lock lasts until it is closed or the
    process ends (also by SIGKILL). A second run on the same work dir gets a
    :class:`WorkDirBusyError` naming the holder instead of writing into the
    same study and checkpoints.
    """
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, '.bipa.lock')
    handle = open(path, 'a+')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or 'another process'
        handle.close()
        raise WorkDirBusyError(
            f'work dir {work_dir} is in use by another run ({holder}); wait for it, stop '
            'it, or train with another --work-dir') from None
    handle.seek(0)
    handle.truncate()
    handle.write(f'pid {os.getpid()} on {socket.gethostname()}\n')
    handle.flush()
    return handle
