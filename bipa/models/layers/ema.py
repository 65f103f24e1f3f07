import torch
from torch import nn


class EMA(nn.Module):
    """Efficient Multi-Scale Attention with cross-spatial learning.

    Ouyang et al., "Efficient Multi-Scale Attention Module with Cross-Spatial
    Learning", ICASSP 2023.

    The channels are split into ``groups`` sub-features, each processed
    independently (folded into the batch dimension):

    * a 1x1 branch encodes the H- and W-pooled descriptors with one shared
      1x1 conv; their sigmoid gates rescale the group, then a per-channel
      GroupNorm;
    * a 3x3 conv branch captures local multi-scale context;
    * cross-spatial learning: each branch's softmax-normalised global
      descriptor attends over the other branch's flattened map; the two
      results are summed into a ``(1, H, W)`` map whose sigmoid reweights
      the group's input.

    Input and output shapes are both ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, *, groups: int = 8) -> None:
        super().__init__()
        if groups < 1 or channels % groups != 0:
            raise ValueError(
                f'EMA: channels ({channels}) must be divisible by groups '
                f'({groups})')
        self.groups = groups
        group_channels = channels // groups
        self.conv1x1 = nn.Conv2d(group_channels, group_channels, 1)
        self.conv3x3 = nn.Conv2d(group_channels, group_channels, 3, padding=1)
        self.norm = nn.GroupNorm(group_channels, group_channels)

    @staticmethod
    def _descriptor(x: torch.Tensor) -> torch.Tensor:
        """Softmax over channels of the global average pool, ``(N, 1, c)``."""
        return x.mean(dim=(2, 3)).softmax(dim=1).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gx = x.reshape(b * self.groups, c // self.groups, h, w)

        # 1x1 branch: shared conv over [H-pooled; W-pooled] stacked along H.
        pool_h = gx.mean(dim=3, keepdim=True)                    # (N, c, h, 1)
        pool_w = gx.mean(dim=2, keepdim=True).transpose(2, 3)    # (N, c, w, 1)
        enc_h, enc_w = self.conv1x1(torch.cat([pool_h, pool_w], dim=2)).split(
            [h, w], dim=2)
        x1 = self.norm(gx * enc_h.sigmoid() * enc_w.transpose(2, 3).sigmoid())

        # 3x3 branch.
        x2 = self.conv3x3(gx)

        # Cross-spatial learning: (N, 1, c) @ (N, c, hw) -> (N, 1, hw).
        weights = (self._descriptor(x1) @ x2.flatten(2) +
                   self._descriptor(x2) @ x1.flatten(2))
        out = gx * weights.reshape(-1, 1, h, w).sigmoid()
        return out.reshape(b, c, h, w)
