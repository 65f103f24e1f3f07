"""UA-ViT adapters inserted into frozen SAM ViT blocks (paper Sec. 3.1)."""
from typing import Optional

import torch
from torch import nn

from .channel_attention import ChannelAttention


class BottleneckAdapter(nn.Module):
    """``Linear(C, C*ratio) -> GELU -> Linear(C*ratio, C)`` on channels-last tokens,
    times ``scale``; with ``skip`` the input is added back."""

    def __init__(self, dim: int, *, ratio: float = 0.25, scale: float = 1.0,
                 skip: bool = False) -> None:
        super().__init__()
        hidden = max(int(dim * ratio), 1)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.scale = scale
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc2(self.act(self.fc1(x))) * self.scale
        return x + out if self.skip else out


class ColorAdapter(nn.Module):
    """Channel attention on the ``(B, H, W, C)`` attention output: re-weights the
    colour-sensitive channels that underwater casts distort."""

    def __init__(self, dim: int, *, reduction: int = 4) -> None:
        super().__init__()
        self.attention = ChannelAttention(dim, reduction=reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = self.attention.weights(x.permute(0, 3, 1, 2))
        return x * gates.permute(0, 2, 3, 1)


class BlockAdapter(nn.Module):
    """The adapters of one ViT block.

    ``attn(h)`` post-processes the attention output before its residual add:
    optional space adapter (bottleneck with skip), then the colour adapter.
    ``mlp(x)`` is the MLP adapter, applied in parallel with the block MLP and
    scaled by ``mlp_scale`` (0.5); the backbone chooses its input (the
    residual stream or the MLP's normalised input).
    """

    def __init__(self, dim: int, *, ratio: float = 0.25, mlp_scale: float = 0.5,
                 use_space: bool = False) -> None:
        super().__init__()
        self.space: Optional[BottleneckAdapter] = (
            BottleneckAdapter(dim, ratio=ratio, skip=True) if use_space else None)
        self.color = ColorAdapter(dim, reduction=int(round(1 / ratio)))
        self.mlp_adapter = BottleneckAdapter(dim, ratio=ratio, scale=mlp_scale)

    def attn(self, h: torch.Tensor) -> torch.Tensor:
        if self.space is not None:
            h = self.space(h)
        return self.color(h)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp_adapter(x)
