import torch
from torch import nn


class ChannelAttention(nn.Module):
    """CBAM-style channel attention on a ``(B, C, H, W)`` map.

    Average- and max-pooled descriptors go through one shared bottleneck
    (1x1 conv ``C -> C/reduction``, GELU, ``C/reduction -> C``); their sum,
    through a sigmoid, rescales the channels of the input.
    """

    def __init__(self, channels: int, *, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, channels, 1))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel gates in (0, 1), shape ``(B, C, 1, 1)``."""
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)
