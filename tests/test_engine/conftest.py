import json
import shutil
import uuid

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from bipa.datasets.synthetic import generate_synthetic_dataset
from bipa.engine import BaseSolver
from tests.conftest import Killed, tiny_bilevel_cfg


class RecordPrompt(Hook):
    """Records rho's group weights and base embedding after every iteration."""

    def __init__(self):
        self.weights, self.embeddings = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        prompt = runner.model.dense_prompt
        self.weights.append(prompt.get_group_weights())
        self.embeddings.append(prompt.embedding.detach().clone())


class KillAt(Hook):
    """Raises :class:`Killed` after iteration ``iteration`` (1-based): the
    process dies there, after that iteration's hooks of higher priority."""

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            raise Killed


def run_loop(cfg, hook=None):
    """Train ``cfg``'s Runner, with ``hook`` registered when given."""
    runner = Runner.from_cfg(cfg)
    if hook is not None:
        runner.register_hook(hook)
    runner.train()
    return runner


def killed_in_search_and_resumed(loop_cfg, monkeypatch, *, round_idx, trial, work_dir,
                                 **train_cfg):
    """A run of ``loop_cfg(work_dir=work_dir, **train_cfg)`` killed while
    round ``round_idx``'s trial ``trial`` is evaluated, then resumed
    (``resume=True``) by a new Runner; returns the resumed runner."""
    evaluate = BaseSolver._evaluate

    def dying_evaluate(self, study, r, number, objective):
        if r == round_idx and number == trial:
            raise Killed
        return evaluate(self, study, r, number, objective)

    monkeypatch.setattr(BaseSolver, '_evaluate', dying_evaluate)
    with pytest.raises(Killed):
        run_loop(loop_cfg(work_dir=work_dir, **train_cfg))
    monkeypatch.setattr(BaseSolver, '_evaluate', evaluate)
    cfg = loop_cfg(work_dir=work_dir, **train_cfg)
    cfg.resume = True
    return run_loop(cfg)


def assert_same_weights(a, b):
    """Two runners' models are bitwise equal."""
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def make_loop_cfg(data_root, work_dir, **train_cfg):
    """:func:`tiny_bilevel_cfg` in ``work_dir``, with learning rates that
    change in both phases (so that resuming must restore them).

    Each config names its own experiment: mmengine names a run's logger after
    the experiment (config name and start time to the second), and a Runner
    built in the same second as an earlier one of the same name gets that
    one's logger, which writes to the earlier run's log file. The name is
    random, not a count: this file is imported twice in one process (by
    pytest as ``conftest``, by the test modules as
    ``tests.test_engine.conftest``; the folder is no package), and two
    counters would hand out the same names."""
    cfg = tiny_bilevel_cfg(data_root)
    cfg.merge_from_dict({'work_dir': str(work_dir), 'log_level': 'WARNING',
                         'experiment_name': f'loop_{uuid.uuid4().hex[:12]}'})
    cfg.param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[3],
                                gamma=0.5)]
    cfg.train_cfg.finetune = dict(lr=1e-3, param_scheduler=[
        dict(type='MultiStepLR', by_epoch=False, milestones=[1], gamma=0.5)])
    cfg.train_cfg.update(train_cfg)
    return cfg


@pytest.fixture
def loop_cfg(tiny_data, tmp_path):
    def make(work_dir=None, **train_cfg):
        return make_loop_cfg(tiny_data, work_dir or tmp_path / 'work', **train_cfg)
    return make


@pytest.fixture(scope='session')
def reference_run(tiny_data, tmp_path_factory):
    """One uninterrupted run of the default ``loop_cfg()``, shared by the tests
    of every module of a worker (read, never changed);
    ``runner.prompt_record`` holds rho after every iteration."""
    runner = Runner.from_cfg(make_loop_cfg(tiny_data, tmp_path_factory.mktemp('ref')))
    runner.prompt_record = RecordPrompt()
    runner.register_hook(runner.prompt_record)
    runner.train()
    return runner


@pytest.fixture(scope='session')
def mixed_size_data(tmp_path_factory):
    """A training split of 96x64 (W x H) and 200x150 images: the demo pipeline
    resizes them up and down to 128 on the longer side, so GT at the original
    scale and GT at the model's input scale differ."""
    root = tmp_path_factory.mktemp('mixed')
    images, annotations, categories = [], [], None
    (root / 'train').mkdir()
    for part, size in (('a', (64, 96)), ('b', (150, 200))):
        src = root / f'src_{part}'
        generate_synthetic_dataset(src, splits=dict(train=4), image_size=size, seed=2,
                                   progress=False)
        coco = json.loads((src / 'annotations' / 'train.json').read_text())
        categories = coco['categories']
        id_map = {}
        for img in coco['images']:
            id_map[img['id']] = len(images) + 1
            name = f'{part}_{img["file_name"]}'
            shutil.copy(src / 'train' / img['file_name'], root / 'train' / name)
            images.append(dict(img, id=id_map[img['id']], file_name=name))
        for ann in coco['annotations']:
            annotations.append(dict(ann, id=len(annotations) + 1,
                                    image_id=id_map[ann['image_id']]))
    (root / 'annotations').mkdir()
    (root / 'annotations' / 'train.json').write_text(json.dumps(
        dict(images=images, annotations=annotations, categories=categories)))
    return root
