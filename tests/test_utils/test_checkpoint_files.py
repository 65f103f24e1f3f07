"""Files written whole or not at all; which checkpoint an auto-resume reads."""
import os
import shutil
import subprocess

import pytest
import torch
from mmengine.runner.checkpoint import save_checkpoint

from bipa.utils import UnreadableCheckpointError, checkpoint_files, checkpoint_problem
from bipa.utils.checkpoint_files import (
    atomic_open,
    find_resume_checkpoint,
    remove_stale_temporaries,
    repair_last_checkpoint,
)
from tests.conftest import HalfWrittenFile, Killed


def save(path, value):
    torch.save(dict(state_dict=dict(w=torch.full((64, 64), float(value)))), path)


def test_an_interrupted_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / 'iter_1.pth'
    path.write_bytes(b'previous')
    with pytest.raises(Killed):
        with atomic_open(str(path)) as f:
            f.write(b'half of the new')
            raise Killed
    assert path.read_bytes() == b'previous' and os.listdir(tmp_path) == ['iter_1.pth']
    with atomic_open(str(path)) as f:
        f.write(b'new')
    assert path.read_bytes() == b'new' and os.listdir(tmp_path) == ['iter_1.pth']


def test_mmengine_save_checkpoint_through_the_atomic_backend(tmp_path, monkeypatch):
    path = tmp_path / 'iter_1.pth'
    save(path, 1)
    real_open = open

    # the module's own open: a kill in the middle of the temporary file's write
    monkeypatch.setattr(checkpoint_files, 'open',
                        lambda *a, **k: HalfWrittenFile(real_open(*a, **k)), raising=False)
    with pytest.raises(Killed):
        save_checkpoint(dict(w=torch.zeros(3)), str(path),
                        backend_args=dict(backend='atomic_local'))
    monkeypatch.delattr(checkpoint_files, 'open')
    assert os.listdir(tmp_path) == ['iter_1.pth'] and checkpoint_problem(str(path)) is None
    assert torch.load(path)['state_dict']['w'][0, 0] == 1
    save_checkpoint(dict(w=torch.zeros(3)), str(path), backend_args=dict(backend='atomic_local'))
    assert torch.equal(torch.load(path)['w'], torch.zeros(3))


def test_checkpoint_problem(tmp_path):
    path = tmp_path / 'c.pth'
    assert checkpoint_problem(str(path)) == 'missing'
    save(path, 1)
    assert checkpoint_problem(str(path)) is None
    data = path.read_bytes()
    for size in (len(data) - 1, len(data) // 2, 10):
        path.write_bytes(data[:size])
        assert checkpoint_problem(str(path)).startswith(f'truncated or damaged ({size} bytes: ')
    path.write_bytes(b'')
    assert checkpoint_problem(str(path)) == 'empty (0 bytes)'
    # a whole archive whose pickle is damaged fails its CRC
    at = data.index(b'state_dict')
    path.write_bytes(data[:at] + b'STATE_DICT' + data[at + 10:])
    assert 'truncated or damaged' in checkpoint_problem(str(path))


def test_checkpoint_problem_does_not_read_the_tensors(tmp_path):
    """Only the archive's directory and its small records are read: damage
    inside a tensor's bytes goes unseen (what a torn write never leaves)."""
    path = tmp_path / 'c.pth'
    torch.save(dict(w=torch.zeros(2 ** 16)), path)
    data = bytearray(path.read_bytes())
    at = data.index(bytes(1024))
    data[at:at + 4] = b'\xff' * 4
    path.write_bytes(bytes(data))
    assert checkpoint_problem(str(path)) is None


def make_work_dir(tmp_path, whole=(), empty=(), truncated=(), last=None):
    for i in whole:
        save(tmp_path / f'iter_{i}.pth', i)
    for i in empty:
        (tmp_path / f'iter_{i}.pth').write_bytes(b'')
    for i in truncated:
        save(tmp_path / f'iter_{i}.pth', i)
        os.truncate(tmp_path / f'iter_{i}.pth', 1000)
    if last is not None:
        (tmp_path / 'last_checkpoint').write_text(last and str(tmp_path / f'iter_{last}.pth'))
    return str(tmp_path)


def test_resume_reads_the_named_checkpoint_when_whole(tmp_path):
    work_dir = make_work_dir(tmp_path, whole=(2, 4, 10), last=4)
    assert find_resume_checkpoint(work_dir) == (str(tmp_path / 'iter_4.pth'), None)
    assert repair_last_checkpoint(work_dir) is None


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'missing'])
def test_resume_falls_back_to_the_newest_readable(tmp_path, damage):
    damaged = dict(truncated=(12,), empty=(14,))  # newer, unreadable: skipped
    if damage != 'missing':
        damaged[damage] += (6,)
    work_dir = make_work_dir(tmp_path, whole=(2, 4, 10), last=6, **damaged)
    named, fallback = tmp_path / 'iter_6.pth', str(tmp_path / 'iter_10.pth')
    path, warning = find_resume_checkpoint(work_dir)
    assert path == fallback
    reason = dict(truncated='truncated or damaged (1000 bytes: ', empty='empty (0 bytes)',
                  missing='missing')[damage]
    assert warning.startswith(f'{tmp_path / "last_checkpoint"} names {named}, which is {reason}')
    assert warning.endswith(f'; resuming from {fallback}, the newest readable checkpoint in '
                            'the work dir')
    assert '\n' not in warning
    assert repair_last_checkpoint(work_dir) == warning
    assert (tmp_path / 'last_checkpoint').read_text() == fallback
    assert find_resume_checkpoint(work_dir) == (fallback, None)


@pytest.mark.parametrize('last', ['', None])  # last_checkpoint empty (torn) or missing
def test_resume_without_a_last_checkpoint(tmp_path, last):
    work_dir = make_work_dir(tmp_path, whole=(2, 4), empty=(6,), last=last)
    path, warning = find_resume_checkpoint(work_dir)
    assert path == str(tmp_path / 'iter_4.pth')
    assert warning.startswith(f'{tmp_path / "last_checkpoint"} is '
                              + ('empty' if last == '' else 'missing') + '; resuming from')


def test_a_fresh_work_dir_starts_over(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) == (None, None)
    assert repair_last_checkpoint(str(tmp_path)) is None
    assert os.listdir(tmp_path) == []


def test_no_readable_checkpoint_is_an_error(tmp_path):
    work_dir = make_work_dir(tmp_path, empty=(2,), truncated=(4,), last=6)
    with pytest.raises(UnreadableCheckpointError) as err:
        find_resume_checkpoint(work_dir)
    assert str(err.value) == (
        f'cannot resume in {work_dir}: no readable checkpoint ({tmp_path / "iter_6.pth"}: '
        'missing; iter_4.pth: truncated or damaged (1000 bytes: File is not a zip file); '
        'iter_2.pth: empty (0 bytes)); resume from a checkpoint elsewhere with --resume CKPT, '
        'or start over without --resume')


@pytest.mark.parametrize('original', ['kept', 'gone'])
def test_a_copied_work_dir_resumes_its_own_checkpoint(tmp_path, original):
    """``cp -r run copy`` while run held iter_4; run then went on to iter_10
    (or was deleted): the copy resumes its own iter_4, never the other run's."""
    run = tmp_path / 'run'
    run.mkdir()
    make_work_dir(run, whole=(2, 4), last=4)
    copy = tmp_path / 'copy'
    shutil.copytree(run, copy)
    if original == 'kept':
        save(run / 'iter_10.pth', 10)
        (run / 'last_checkpoint').write_text(str(run / 'iter_10.pth'))
    else:
        shutil.rmtree(run)
    path, warning = find_resume_checkpoint(str(copy))
    assert path == str(copy / 'iter_4.pth')
    assert warning == (f'{copy / "last_checkpoint"} names {run / "iter_4.pth"}, outside this '
                       f'work dir (copied or moved?); resuming from {path}, the file of that '
                       'name in it')
    # named file gone in the copy too: the newest readable one of the copy's own
    os.remove(copy / 'iter_4.pth')
    path, warning = find_resume_checkpoint(str(copy))
    assert path == str(copy / 'iter_2.pth') and 'outside this work dir' in warning


def test_stale_temporary_files_are_removed(tmp_path):
    """A write killed mid-way leaves ``.<name>.<pid>.tmp``: removed when its
    process is gone, kept while it runs."""
    gone = subprocess.Popen(['true'])
    gone.wait()
    stale = tmp_path / f'.iter_4.pth.{gone.pid}.tmp'
    stale.write_bytes(b'x' * 2048)
    running = tmp_path / f'.iter_6.pth.{os.getpid()}.tmp'
    running.write_bytes(b'x')
    keep = tmp_path / 'iter_2.pth'
    save(keep, 2)
    message = remove_stale_temporaries([str(tmp_path), str(tmp_path / 'absent')])
    assert message == ('removed 1 temporary file(s) that interrupted checkpoint writes left: '
                       f'{stale} (0.0 MiB)')
    assert sorted(os.listdir(tmp_path)) == sorted([running.name, keep.name])
    assert remove_stale_temporaries([str(tmp_path)]) is None
