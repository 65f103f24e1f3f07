import pytest
import torch

from bipa.models.layers.ema import EMA


@pytest.mark.parametrize('channels,groups,size', [(16, 4, (8, 8)),
                                                  (32, 8, (5, 7)),
                                                  (8, 8, (4, 6))])
def test_ema_preserves_shape(channels, groups, size):
    x = torch.randn(2, channels, *size)
    assert EMA(channels, groups=groups)(x).shape == x.shape


def test_ema_gradients_flow():
    torch.manual_seed(0)
    ema = EMA(16, groups=4)
    x = torch.randn(2, 16, 6, 5, requires_grad=True)
    (ema(x) * torch.randn(2, 16, 6, 5)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in ema.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_ema_groups_are_independent():
    ema = EMA(8, groups=2).eval()
    x = torch.randn(1, 8, 4, 4)
    y = x.clone()
    y[:, 4:] = torch.randn(1, 4, 4, 4)  # only the second group changes
    assert torch.allclose(ema(x)[:, :4], ema(y)[:, :4])


@pytest.mark.parametrize('channels,groups', [(30, 8), (16, 0)])
def test_ema_bad_groups(channels, groups):
    with pytest.raises(ValueError, match='divisible by groups'):
        EMA(channels, groups=groups)
