"""UA-ViT adapters inserted into frozen SAM ViT blocks (paper Sec. 3.1)."""
from typing import Optional

import torch
from torch import nn

from ...utils import ConfigError, check_choice
from .channel_attention import ChannelAttention

ADAPTER_INITS = ('identity', 'random')


class BottleneckAdapter(nn.Module):
    """``Linear(C, C*ratio) -> GELU -> Linear(C*ratio, C)`` on channels-last tokens,
    times ``scale``; with ``skip`` the input is added back.

    ``zero_init`` starts the output layer at zero, so the branch adds nothing
    at step 0 (with ``skip`` the adapter is the identity) while ``fc2`` still
    receives a gradient.
    """

    def __init__(self, dim: int, *, ratio: float = 0.25, scale: float = 1.0,
                 skip: bool = False, zero_init: bool = False) -> None:
        super().__init__()
        hidden = max(int(dim * ratio), 1)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.scale = scale
        self.skip = skip
        if zero_init:
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc2(self.act(self.fc1(x))) * self.scale
        return x + out if self.skip else out


class ColorAdapter(nn.Module):
    """Channel attention on the ``(B, H, W, C)`` attention output: re-weights the
    colour-sensitive channels that underwater casts distort.

    ``init='random'`` (the authors): gates ``sigmoid(z)`` from a randomly
    initialised attention MLP, about 0.5 at step 0. ``init='identity'``: gates
    ``2 * sigmoid(z)`` with the MLP's last layer at zero, so every gate is
    exactly 1 at step 0 and the block computes SAM's attention output.
    """

    def __init__(self, dim: int, *, reduction: int = 4, init: str = 'random') -> None:
        super().__init__()
        self.attention = ChannelAttention(dim, reduction=reduction)
        self.gain = 2.0 if init == 'identity' else 1.0
        if init == 'identity':
            last = self.attention.mlp[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = self.attention.weights(x.permute(0, 3, 1, 2)) * self.gain
        return x * gates.permute(0, 2, 3, 1)


class BlockAdapter(nn.Module):
    """The adapters of one ViT block.

    ``attn(h)`` post-processes the attention output before its residual add:
    optional space adapter (bottleneck with skip), then the colour adapter.
    ``mlp(x)`` is the MLP adapter, applied in parallel with the block MLP and
    scaled by ``mlp_scale`` (0.5); the backbone chooses its input (the
    residual stream or the MLP's normalised input).

    ``init='identity'`` makes all three the identity (or zero, for the MLP
    branch) at step 0, so the adapted encoder starts as SAM's encoder;
    ``'random'`` is the authors' initialisation.
    """

    def __init__(self, dim: int, *, ratio: float = 0.25, mlp_scale: float = 0.5,
                 use_space: bool = False, init: str = 'identity') -> None:
        super().__init__()
        check_choice(init, ADAPTER_INITS, 'model.backbone.adapter_init', ConfigError)
        zero = init == 'identity'
        self.space: Optional[BottleneckAdapter] = (
            BottleneckAdapter(dim, ratio=ratio, skip=True, zero_init=zero)
            if use_space else None)
        self.color = ColorAdapter(dim, reduction=int(round(1 / ratio)), init=init)
        self.mlp_adapter = BottleneckAdapter(dim, ratio=ratio, scale=mlp_scale, zero_init=zero)

    def attn(self, h: torch.Tensor) -> torch.Tensor:
        if self.space is not None:
            h = self.space(h)
        return self.color(h)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp_adapter(x)
