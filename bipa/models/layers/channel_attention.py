import torch
from mmcv.cnn import build_activation_layer
from mmdet.utils import ConfigType
from torch import nn


class ChannelAttention(nn.Module):
    """CBAM-style channel attention on a ``(B, C, H, W)`` map.

    Average- and max-pooled descriptors go through one shared bottleneck
    (1x1 conv ``C -> C/reduction``, ``act_cfg``, ``C/reduction -> C``, with
    ``bias`` on both convs); their sum, through a sigmoid, rescales the
    channels of the input. The defaults are GELU with biases; CBAM and the BiPA
    authors' FAI neck use ReLU without biases.
    """

    def __init__(self,
                 channels: int,
                 *,
                 reduction: int = 4,
                 act_cfg: ConfigType = dict(type='GELU'),
                 bias: bool = True) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias), build_activation_layer(act_cfg),
            nn.Conv2d(hidden, channels, 1, bias=bias))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel gates in (0, 1), shape ``(B, C, 1, 1)``."""
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)
