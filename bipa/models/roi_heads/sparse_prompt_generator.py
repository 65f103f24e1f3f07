import math

import torch
from mmdet.registry import MODELS
from torch import nn


@MODELS.register_module()
class SparsePromptGenerator(nn.Module):
    """RoI features ``(N, C, S, S)`` -> ``num_tokens`` sparse prompt tokens ``(N, T, D)``.

    A stride-2 3x3 conv, then an MLP to ``T x D/2`` values ``t``; each token is
    ``[sin(t), cos(t)]``, the same sinusoidal form as SAM's point and box
    prompt embeddings, so the frozen decoder receives tokens in a familiar
    range.
    """

    def __init__(self, *, in_channels: int = 256, roi_size: int = 14, num_tokens: int = 5,
                 embed_dim: int = 256, hidden_dim: int = 1024) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f'embed_dim must be even for sin/cos tokens, got {embed_dim}')
        self.num_tokens = num_tokens
        self.embed_dim = embed_dim
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        pooled = math.ceil(roi_size / 2)
        self.mlp = nn.Sequential(
            nn.Flatten(1), nn.Linear(in_channels * pooled * pooled, hidden_dim),
            nn.ReLU(inplace=True), nn.Linear(hidden_dim, num_tokens * embed_dim // 2))

    def forward(self, roi_feats: torch.Tensor) -> torch.Tensor:
        t = self.mlp(self.conv(roi_feats)).view(-1, self.num_tokens, self.embed_dim // 2)
        return torch.cat([torch.sin(t), torch.cos(t)], dim=-1)
