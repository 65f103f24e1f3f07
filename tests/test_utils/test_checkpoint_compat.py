"""mmengine saves, loads and resumes its own checkpoints on torch >= 2.6."""
import pickle

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

import bipa  # noqa: F401  (registers the safe globals)


class LinearModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(inputs).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - targets) ** 2).mean())
        return out


class ToyDataset(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(2, generator=g), targets=torch.tensor(1.0))


def make_runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=LinearModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyDataset(), batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        randomness=dict(seed=0), **kwargs)


def test_train_save_and_resume(tmp_path):
    make_runner(tmp_path, max_iters=2).train()
    ckpt = tmp_path / 'iter_2.pth'
    # loads with torch's restricted unpickler (the torch >= 2.6 default)
    loaded = torch.load(ckpt, weights_only=True)
    assert loaded['meta']['iter'] == 2 and 'message_hub' in loaded

    runner = make_runner(tmp_path, max_iters=4, resume=True)
    runner.train()
    assert runner.iter == 4
    assert (tmp_path / 'iter_4.pth').exists()

    fresh = make_runner(tmp_path / 'load', max_iters=1, load_from=str(ckpt))
    fresh.train()
    assert _load_checkpoint(str(ckpt))['meta']['iter'] == 2


def test_arbitrary_getattr_is_still_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__subclasses__')

    path = tmp_path / 'evil.pth'
    torch.save({'x': Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
