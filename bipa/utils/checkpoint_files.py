"""Checkpoint files written whole or not at all, and the checkpoint an
auto-resume can read.

mmengine writes a checkpoint in place (``LocalBackend.put``: ``open(path,
'wb')``): a process killed mid-write leaves a truncated file, which
``work_dir/last_checkpoint`` may already name. Here a file goes to a temporary
name in its folder and is then ``os.replace``d onto its name (file backend
``'atomic_local'``), and a resume looks past a ``last_checkpoint`` whose file
cannot be read.
"""
import contextlib
import os
import os.path as osp
import re
import zipfile
from typing import IO, Iterator, List, Optional, Sequence, Tuple

from mmengine.fileio import LocalBackend, register_backend

ATOMIC_BACKEND = 'atomic_local'
LAST_CHECKPOINT = 'last_checkpoint'
_ITER_CHECKPOINT = re.compile(r'iter_(\d+)\.pth$')
_TEMPORARY = re.compile(r'\.(.+)\.(\d+)\.tmp')  # atomic_open's temporary files
_SMALL_RECORD = 1 << 20  # bytes: the file's last record is read (its CRC checked) up to this size


class UnreadableCheckpointError(FileNotFoundError):
    """An auto-resume found checkpoints, none of them readable."""


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'wb', **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` for writing, whole or not at all: the file is
    written to ``.<name>.<pid>.tmp`` in the same folder, flushed to disk and
    renamed onto ``path`` when the block ends. An exception in the block
    removes the temporary file; a killed process leaves it, never a partial
    ``path``."""
    folder, name = osp.split(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{name}.{os.getpid()}.tmp')
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself, on file systems that allow it
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` with :func:`atomic_open`."""
    with atomic_open(path, 'w', encoding='utf-8') as f:
        f.write(text)


@register_backend(ATOMIC_BACKEND, force=True)  # force: the module may be reloaded
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with :func:`atomic_open` writes. Chosen
    with ``backend_args=dict(backend='atomic_local')``."""

    def put(self, obj: bytes, filepath) -> None:
        with atomic_open(str(filepath), 'wb') as f:
            f.write(obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        with atomic_open(str(filepath), 'w', encoding=encoding) as f:
            f.write(obj)


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a whole ``torch.save`` file, or ``None``.

    Reads the zip archive's directory (at the end of the file, so a
    truncated file has none), checks that it holds torch's ``data.pkl``
    record, and reads that record and the last one in the file (both small),
    which checks their CRCs. The tensors are not read: the cost is that of the
    directory, a few hundred bytes per tensor, whatever the file's size.
    """
    if not osp.isfile(path):
        return 'missing'
    size = osp.getsize(path)
    if size == 0:
        return 'empty (0 bytes)'
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
            pickle = [r for r in records if r.filename.endswith('/data.pkl')]
            if not pickle:
                return f'not a torch checkpoint ({size} bytes, no data.pkl record)'
            archive.read(pickle[0])
            last = max(records, key=lambda r: r.header_offset)
            if last.file_size <= _SMALL_RECORD:
                archive.read(last)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        return f'truncated or damaged ({size} bytes: {err})'
    return None


def load_from_problem(load_from: Optional[str], resume: bool) -> Optional[str]:
    """Why a run cannot start from ``load_from`` (a local file that is
    missing, empty or truncated), as one line, or ``None``."""
    if not load_from or '://' in str(load_from):
        return None
    problem = checkpoint_problem(str(load_from))
    if problem is None:
        return None
    if resume:
        return (f'cannot resume from {load_from}: {problem}; --resume without a path resumes '
                'from the newest readable checkpoint in the work dir')
    return f'load_from: {load_from} is {problem}; expected a checkpoint saved by tools/train.py'


def _iter_checkpoints(folder: str) -> List[Tuple[int, str]]:
    """``(iteration, path)`` of the ``iter_<n>.pth`` files in ``folder``,
    newest first."""
    if not osp.isdir(folder):
        return []
    found = [(int(m.group(1)), osp.join(folder, name)) for name in os.listdir(folder)
             if (m := _ITER_CHECKPOINT.fullmatch(name))]
    return sorted(found, reverse=True)


def find_resume_checkpoint(work_dir: str, folders: Optional[Sequence[str]] = None
                           ) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoint an auto-resume in ``work_dir`` should load, and a
    warning when it is not the one ``work_dir/last_checkpoint`` names.

    ``folders`` are where this run's checkpoints live (default: the work
    dir). A ``last_checkpoint`` naming a file elsewhere (a work dir copied or
    moved after it was written) is read as the file of that name in them.
    That one when it is readable (:func:`checkpoint_problem`); otherwise
    (missing, empty, truncated, or ``last_checkpoint`` itself empty) the
    newest readable ``iter_<n>.pth`` in ``folders``. ``(None, None)`` when
    there is no checkpoint at all (a fresh start, as mmengine's). Raises
    :class:`UnreadableCheckpointError` when there are checkpoints and none is
    readable.
    """
    folders = [osp.abspath(f) for f in (folders or [work_dir])]
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    named = moved = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
    if named and osp.dirname(osp.abspath(named)) not in folders:
        moved, name = named, osp.basename(named)
        named = next((osp.join(d, name) for d in folders if osp.isfile(osp.join(d, name))),
                     osp.join(folders[0], name))
    problem = checkpoint_problem(named) if named else None
    if named and problem is None:
        return named, None if moved is None else (
            f'{pointer} names {moved}, outside this work dir (copied or moved?); resuming '
            f'from {named}, the file of that name in it')
    candidates = sorted((c for d in folders for c in _iter_checkpoints(d)), reverse=True)
    if named is None and not candidates:
        return None, None
    problems = [f'{named}: {problem}'] if named else []
    for _, path in candidates:
        if osp.abspath(path) == osp.abspath(named or ''):
            continue
        why = checkpoint_problem(path)
        if why is None:
            if moved is not None:
                source = (f'{pointer} names {moved}, outside this work dir (copied or '
                          f'moved?), and {named} is {problem}')
            elif named:
                source = f'{pointer} names {named}, which is {problem}'
            else:
                source = f'{pointer} is ' + ('empty' if osp.isfile(pointer) else 'missing')
            return path, (f'{source}; resuming from {path}, the newest readable checkpoint '
                          'in the work dir')
        problems.append(f'{osp.basename(path)}: {why}')
    raise UnreadableCheckpointError(
        f'cannot resume in {work_dir}: no readable checkpoint ({"; ".join(problems[:3])}'
        + (f'; {len(problems) - 3} more' if len(problems) > 3 else '') + '); resume from a '
        'checkpoint elsewhere with --resume CKPT, or start over without --resume')


def repair_last_checkpoint(work_dir: str, *, write: bool = True,
                           folders: Optional[Sequence[str]] = None) -> Optional[str]:
    """Point ``work_dir/last_checkpoint`` (what mmengine's auto-resume loads)
    at :func:`find_resume_checkpoint`'s choice, written atomically when
    ``write``; returns its warning, or ``None`` when nothing changes."""
    path, warning = find_resume_checkpoint(work_dir, folders)
    if warning is not None and write:
        write_text_atomic(osp.join(work_dir, LAST_CHECKPOINT), path)
    return warning


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folders: Sequence[str]) -> Optional[str]:
    """Remove the temporary files (:func:`atomic_open`'s ``.<name>.<pid>.tmp``)
    that writes killed mid-way left in ``folders``, those of processes no
    longer running on this machine; returns the line that lists them, or
    ``None`` when there were none."""
    removed = []
    for folder in folders:
        if not osp.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            match = _TEMPORARY.fullmatch(name)
            if match is None or _alive(int(match.group(2))):
                continue
            path = osp.join(folder, name)
            size = osp.getsize(path)
            os.remove(path)
            removed.append(f'{path} ({size / 2**20:.1f} MiB)')
    if not removed:
        return None
    return (f'removed {len(removed)} temporary file(s) that interrupted checkpoint writes left: '
            + ', '.join(removed))
