import torch
import torch.nn.functional as F

from bipa.models.layers import LayerNorm2d


def test_layer_norm_2d_normalises_channels_and_returns_contiguous_nchw():
    torch.manual_seed(0)
    norm = LayerNorm2d(8)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 8, 5, 7)
    out = norm(x)
    # contiguous NCHW: consumers that read raw memory (mmcv's RoIAlign) see
    # the layout the shape promises
    assert out.is_contiguous() and out.stride() == (8 * 5 * 7, 5 * 7, 7, 1)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (8, ), norm.weight, norm.bias,
                            1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, expected)
