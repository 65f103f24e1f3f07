"""bipa.utils.run_config: the CUDA allocator's settings from env_cfg."""
import os

import pytest
import torch
from mmengine.config import Config

from bipa.utils import setup_cuda_allocator, shutdown_distributed
from tests.conftest import ROOT

VAR = 'PYTORCH_CUDA_ALLOC_CONF'


def cfg_with(conf):
    return Config(dict(env_cfg=dict(cudnn_benchmark=False, cuda_alloc_conf=conf)))


def test_env_cfg_sets_the_allocator_when_the_environment_does_not(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    assert setup_cuda_allocator(cfg_with('expandable_segments:True')) == \
        'expandable_segments:True'
    assert os.environ[VAR] == 'expandable_segments:True'


def test_the_environment_wins_and_no_setting_changes_nothing(monkeypatch):
    monkeypatch.setenv(VAR, 'max_split_size_mb:128')
    assert setup_cuda_allocator(cfg_with('expandable_segments:True')) == 'max_split_size_mb:128'
    monkeypatch.delenv(VAR)
    assert setup_cuda_allocator(cfg_with(None)) is None
    assert setup_cuda_allocator(Config(dict())) is None


def test_too_late_once_cuda_is_initialised(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    monkeypatch.setattr(torch.cuda, 'is_initialized', lambda: True)
    with pytest.raises(RuntimeError, match='env_cfg.cuda_alloc_conf'):
        setup_cuda_allocator(cfg_with('expandable_segments:True'))


def test_the_runtime_base_sets_expandable_segments():
    cfg = Config.fromfile(ROOT / 'configs' / 'bipa_uiis.py')
    assert cfg.env_cfg.cuda_alloc_conf == 'expandable_segments:True'
    assert cfg.env_cfg.cudnn_benchmark is False  # measured: re-tuning per RoI count


def test_shutdown_distributed_joins_the_backend_threads(tmp_path):
    """After a run, the process group is destroyed and gloo's threads are
    joined even while a finished runner's reference cycle still holds the
    group (as mmengine's DDP wrapper does): no thread is left to abort the
    interpreter's exit."""
    dist = torch.distributed

    def threads():
        return len(os.listdir('/proc/self/task'))

    shutdown_distributed()  # no group: nothing to do
    before = threads()
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0,
                            world_size=1)
    objects = [None]
    dist.broadcast_object_list(objects, src=0)

    class Runner:
        pass
    runner = Runner()
    runner.cycle, runner.group = runner, dist.group.WORLD
    del runner
    assert threads() > before
    shutdown_distributed()
    assert not dist.is_initialized()
    assert threads() == before
