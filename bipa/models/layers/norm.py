import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """Channels-first layer norm: normalises ``(B, C, H, W)`` over ``C`` and
    returns a contiguous NCHW tensor (not the channels-last strides of the
    permute, which code reading raw memory, such as mmcv's RoIAlign, misreads)."""

    def __init__(self, channels: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight,
                         self.bias, self.eps)
        return x.permute(0, 3, 1, 2).contiguous()
