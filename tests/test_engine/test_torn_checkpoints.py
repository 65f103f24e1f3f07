"""Checkpoints are written whole or not at all, and --resume gets past a torn
one (a file written in place and killed mid-write, as mmengine's
CheckpointHook does): the run finishes bitwise equal to an uninterrupted run."""
import builtins
import glob
import os
import os.path as osp
import shutil

import pytest
import torch

from bipa.apis import run_cli
from tests.conftest import HalfWrittenFile, Killed, load_tool
from tests.test_engine.conftest import KillAt, make_loop_cfg
from tests.test_engine.conftest import run_loop as run


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def log_of(runner):
    """The run's log file. mmengine keys a run's logger by experiment name and
    start second: a Runner that shares both with an earlier one in this
    process gets that one's logger, which writes (and prints) to the earlier
    run's file, and this run's log dir holds none."""
    assert osp.dirname(runner.logger.log_file) == runner.log_dir, (
        f'the run logs to {runner.logger.log_file}, another run\'s log file')
    return ''.join(open(p).read() for p in glob.glob(osp.join(runner.log_dir, '*.log')))


def assert_same_weights(reference, runner):
    assert runner.iter == reference.iter
    for (name, a), b in zip(reference.model.state_dict().items(),
                            runner.model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.fixture(scope='module')
def killed_run(tiny_data, tmp_path_factory):
    """A run with a checkpoint every iteration, killed in iteration 5 (fine-tuning)
    before its checkpoint: iter_1..4.pth, last_checkpoint names iter_4.pth."""
    work_dir = tmp_path_factory.mktemp('killed')
    cfg = make_loop_cfg(tiny_data, work_dir)
    cfg.default_hooks.checkpoint.interval = 1
    with pytest.raises(Killed):
        run(cfg, KillAt(5))
    assert last_checkpoint(work_dir) == str(work_dir / 'iter_4.pth')
    return work_dir


def copy_run(src, dst):
    """The killed run's work dir at ``dst``, its last_checkpoint pointing there."""
    shutil.copytree(src, dst)
    (dst / 'last_checkpoint').write_text(str(dst / 'iter_4.pth'))


@pytest.mark.parametrize('damage', ['truncated', 'empty'])
def test_resume_past_a_torn_last_checkpoint(killed_run, reference_run, tiny_data, tmp_path,
                                            damage):
    work_dir = tmp_path / 'work'
    copy_run(killed_run, work_dir)
    torn = work_dir / 'iter_4.pth'
    size = torn.stat().st_size
    with open(torn, 'r+b') as f:  # what a kill in an in-place write leaves
        f.truncate(size // 2 if damage == 'truncated' else 0)
    cfg = make_loop_cfg(tiny_data, work_dir)
    cfg.resume = True
    runner = run(cfg)
    warnings = [line for line in log_of(runner).splitlines() if 'WARNING' in line
                and 'last_checkpoint' in line]
    assert len(warnings) == 1
    assert f'names {torn}, which is ' in warnings[0]
    assert f'resuming from {work_dir / "iter_3.pth"}' in warnings[0]
    assert_same_weights(reference_run, runner)
    assert last_checkpoint(work_dir) == str(work_dir / 'iter_6.pth')


def test_a_write_killed_midway_leaves_the_previous_file(reference_run, tiny_data, tmp_path,
                                                        monkeypatch):
    """CheckpointHook writes iter_4.pth again after the loop's own write before
    round 2's search; killed halfway through, the loop's file stays whole and
    named in last_checkpoint, and the run resumes from it (repeating the
    search from the study) to the uninterrupted run's weights."""
    work_dir = tmp_path / 'work'
    cfg = make_loop_cfg(tiny_data, work_dir)
    cfg.default_hooks.checkpoint.interval = 2
    writes, real_open = [], open

    def dying_open(file, mode='r', *args, **kwargs):
        if 'w' in mode and 'iter_4.pth' in osp.basename(str(file)):
            writes.append(file)
            if len(writes) == 2:  # CheckpointHook's, after the loop's
                return HalfWrittenFile(real_open(file, mode, *args, **kwargs))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', dying_open)
    with pytest.raises(Killed):
        run(cfg)
    monkeypatch.setattr(builtins, 'open', real_open)
    names = os.listdir(work_dir)
    assert sorted(n for n in names if '.pth' in n) == ['iter_2.pth', 'iter_4.pth']
    assert last_checkpoint(work_dir) == str(work_dir / 'iter_4.pth')
    checkpoint = torch.load(work_dir / 'iter_4.pth', weights_only=True)
    assert checkpoint['meta']['iter'] == 4 and checkpoint['bilevel_loop']['rounds_done'] == 1

    cfg = make_loop_cfg(tiny_data, work_dir)
    cfg.resume = True
    assert_same_weights(reference_run, run(cfg))


def test_resume_with_no_readable_checkpoint_is_one_error_line(tiny_data, tmp_path, capsys):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'iter_2.pth').write_bytes(b'')
    (work_dir / 'iter_4.pth').write_bytes(b'PK\x03\x04' + bytes(100))  # a torn zip
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_4.pth'))
    config = tmp_path / 'tiny_bilevel.py'
    make_loop_cfg(tiny_data, work_dir).dump(str(config))
    code = run_cli(load_tool('train').main, [str(config), '--resume'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f'error: cannot resume in {work_dir}: no readable checkpoint '
                             f'({work_dir / "iter_4.pth"}: truncated or damaged (104 bytes')
    assert 'iter_2.pth: empty (0 bytes)' in err[0]
    # a checkpoint given by hand
    code = run_cli(load_tool('train').main, [str(config), '--resume', str(work_dir / 'iter_2.pth')])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        f'error: cannot resume from {work_dir / "iter_2.pth"}: empty (0 bytes); --resume without '
        'a path resumes from the newest readable checkpoint in the work dir (--debug shows the '
        'traceback)']
