"""Shared fixtures: a tiny BiPA config and mmdet-style demo inputs."""
import copy
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
import mmengine.config.config as mmengine_config
import mmengine.dataset.base_dataset as mmengine_base_dataset
from mmengine.config import Config

import bipa  # noqa: F401  (registers the modules)

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL_CFG = ROOT / 'configs' / '_base_' / 'models' / 'bipa_vit-tiny.py'

register_all_modules(init_default_scope=True)


def load_tool(path: str):
    """A script under ``tools/`` (``'analysis/benchmark'``) as a module:
    tools/ is not a package, tests call the scripts' functions in-process."""
    file = ROOT / 'tools' / f'{path}.py'
    spec = importlib.util.spec_from_file_location('bipa_tools_' + path.replace('/', '_'), file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# tiny models: one thread is faster than two and immune to a busy machine
torch.set_num_threads(1)

# Two mmengine costs that dominate a tiny Runner and change no result: every
# Runner formats its config with yapf 3 times (log, dump, visualizer: 0.3 s
# each), and every dataset runs a full gc.collect() when it serialises its
# annotations (0.5 s in a test process). Tests keep the text unformatted and
# skip that collection; subprocess tests and the tools run them as users do.
mmengine_config.FormatCode = lambda text, **kwargs: (text, False)
mmengine_base_dataset.gc = SimpleNamespace(collect=lambda *args: 0)


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Every test builds in mmdet's registry scope, whatever a previous test's
    Runner left as the default scope."""
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='session')
def tiny_model_cfg():
    """The tiny BiPA model config (a fresh copy per use)."""
    base = Config.fromfile(str(TINY_MODEL_CFG))

    def make(**overrides):
        cfg = copy.deepcopy(base)
        cfg.merge_from_dict({f'model.{k}': v for k, v in overrides.items()})
        return cfg.model
    return make


@pytest.fixture
def demo_batch():
    """Two images (one non-square) with 3 and 2 instances, boxes and masks."""
    def make(shapes=((3, 128, 128), (3, 96, 128)), num_items=(3, 2), seed=0):
        torch.manual_seed(seed)
        return demo_mm_inputs(len(shapes), [list(s) for s in shapes],
                              num_items=list(num_items), with_mask=True)
    return make
