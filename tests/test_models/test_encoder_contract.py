"""The backbone contract: any encoder that returns an :class:`EncoderOutput`
and declares its levels plugs into FAI and the mask path."""
import pytest
import torch
from mmdet.registry import MODELS
from torch import nn

from bipa.models import EncoderOutput


@MODELS.register_module(force=True)
class ToyEncoder(nn.Module):
    """Three levels of 8, 24 and 40 channels at strides 4, 8 and 16, and a
    32-d image embedding at stride 8."""

    channels, strides = (8, 24, 40), (4, 8, 16)

    @classmethod
    def level_spec(cls, **_):
        return cls.channels, cls.strides

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.downs = nn.ModuleList([nn.Conv2d(8, 24, 2, stride=2), nn.Conv2d(24, 40, 2, stride=2)])
        self.embed = nn.Conv2d(24, 32, 1)

    def forward(self, x):
        levels = [self.stem(x)]
        for down in self.downs:
            levels.append(down(levels[-1]))
        return EncoderOutput(self.embed(levels[1]), levels, self.strides)


@pytest.fixture
def toy_bipa(tiny_model_cfg):
    cfg = tiny_model_cfg(**{'backbone': dict(_delete_=True, type='ToyEncoder'),
                            'local_backbone.out_indices': (0, 1, 2),
                            'neck.local_channels': (8, 16, 32), 'neck.local_strides': (4, 8, 16)})
    return MODELS.build(cfg)


def test_a_three_level_encoder_plugs_into_fai_and_the_mask_path(toy_bipa, demo_batch):
    model = toy_bipa
    branches = [(b[1].proj.conv.in_channels, len(b[2])) for b in model.neck.vit_branches]
    assert branches == [(8, 0), (24, 0), (40, 0)]  # its channels; strides equal: no resampling
    batch = model.data_preprocessor(demo_batch(), True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert losses['loss_mask'].requires_grad
    model.parse_losses(losses)[0].backward()
    # the mask loss reaches the embedding, FAI's levels reach every stage
    assert model.backbone.embed.weight.grad.abs().sum() > 0
    assert all(d.weight.grad.abs().sum() > 0 for d in model.backbone.downs)
    model.eval()
    with torch.no_grad():
        batch = model.data_preprocessor(demo_batch(), False)
        results = model.predict(batch['inputs'], batch['data_samples'])
    assert results[1].pred_instances.masks.shape[-2:] == (96, 128)
