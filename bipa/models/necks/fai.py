"""Foreground Attention Injection (FAI) neck of BiPA (CVPR 2026).

Per level ``v`` the encoder feature ``F_v`` (SAM's ViT: stride 16 at every
level; SAM 2's Hiera: one stage per level) and the local CNN
feature ``C_v`` are turned into ``F̄_v`` and ``Ḡ_v`` at the local stride and
fused as ``H_v = (1 - α) · Ḡ_v + α · F̄_v`` with ``α = φ(F̄_v, Ḡ_v)``; a simple
FPN head then produces the multi-level outputs.
"""
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...utils import ConfigError, check_choice
from ..layers.channel_attention import ChannelAttention
from ..layers.ema import EMA
from ..layers.norm import LayerNorm2d

FUSIONS = ('fai', 'sum')
MULTISCALE_CONVS = ('full', 'depthwise')
VIT_CHANNEL_ATTENTIONS = ('per_level', 'shared')


class MultiScaleConv(nn.Module):
    """1x1 projection + BN + GELU, then the sum of parallel KxK convs, BN, GELU.

    ``conv='full'`` (the authors' code) makes the KxK convs dense: ~5.4M
    parameters per level at 256 channels for 3/5/7; ``'depthwise'`` uses one
    filter per channel (~21K), widening the receptive field without mixing
    channels again after the projection.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 kernel_sizes: Sequence[int] = (3, 5, 7),
                 conv: str = 'full',
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True)
                 ) -> None:
        super().__init__()
        check_choice(conv, MULTISCALE_CONVS, 'model.neck.multiscale_conv', ConfigError)
        self.proj = ConvModule(in_channels, out_channels, 1, norm_cfg=norm_cfg,
                               act_cfg=dict(type='GELU'))
        groups = out_channels if conv == 'depthwise' else 1
        self.branches = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, k, padding=k // 2,
                      groups=groups, bias=False) for k in kernel_sizes)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1]
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        x = sum(branch(x) for branch in self.branches)
        return self.act(self.norm(x))


class ScaleAwareSampling(nn.Sequential):
    """Resamples a map from ``in_stride`` to ``out_stride``.

    Upsampling by ``2**n`` is ``n`` stride-2 transposed convs with norm + GELU
    between them (GELU only, the authors' code, with ``norm_cfg=None``; a
    transposed conv has a bias unless a norm follows it); downsampling by ``k``
    is a ``k x k`` max-pool; equal strides give the identity.
    """

    def __init__(self,
                 channels: int,
                 *,
                 in_stride: int,
                 out_stride: int,
                 norm_cfg: OptConfigType = dict(type='BN', requires_grad=True)
                 ) -> None:
        layers: List[nn.Module] = []
        if out_stride < in_stride:
            ratio = in_stride // out_stride
            num_up = ratio.bit_length() - 1
            if ratio * out_stride != in_stride or 2**num_up != ratio:
                raise ValueError(
                    f'upsampling from stride {in_stride} to {out_stride} '
                    'needs a power-of-two ratio')
            for i in range(num_up):
                last = i == num_up - 1
                normed = not last and norm_cfg is not None
                layers.append(
                    nn.ConvTranspose2d(channels, channels, 2, stride=2,
                                       bias=not normed))
                if normed:
                    layers.append(build_norm_layer(norm_cfg, channels)[1])
                if not last:
                    layers.append(nn.GELU())
        elif out_stride > in_stride:
            ratio = out_stride // in_stride
            if ratio * in_stride != out_stride:
                raise ValueError(
                    f'downsampling from stride {in_stride} to {out_stride} '
                    'needs an integer ratio')
            layers.append(nn.MaxPool2d(ratio))
        super().__init__(*layers)  # empty Sequential is the identity


class WeightGenerator(nn.Module):
    """φ: fusion weights α in (0, 1).

    ``α = sigmoid(conv3x3(ReLU(BN(conv3x3([Ḡ; F̄])))))`` with channels
    ``2C -> C -> alpha_channels``: 1 gives the paper's position-wise weights
    (one map shared by all channels, as in the authors' code), ``C`` one
    weight per position and channel.
    """

    def __init__(self,
                 channels: int,
                 *,
                 alpha_channels: int = 1,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True)
                 ) -> None:
        super().__init__()
        check_choice(alpha_channels, (1, channels), 'model.neck.alpha_channels', ConfigError)
        self.reduce = ConvModule(
            2 * channels, channels, 3, padding=1, norm_cfg=norm_cfg,
            act_cfg=dict(type='ReLU'))
        self.out = nn.Conv2d(channels, alpha_channels, 3, padding=1)

    def forward(self, local: Tensor, vit: Tensor) -> Tensor:
        return self.out(self.reduce(torch.cat([local, vit], dim=1))).sigmoid()


@MODELS.register_module()
class FAINeck(BaseModule):
    """Foreground Attention Injection neck followed by a simple FPN.

    Args:
        vit_channels: Channels of the encoder's features: one number for
            every level (SAM's ViT) or one per level (SAM 2's Hiera stages),
            the backbone's ``level_channels``.
        local_channels: Channels of the local (CNN) features, one per level.
        out_channels: Channels of the fused maps and of every output.
        num_outs: Number of outputs; levels beyond ``len(local_channels)`` are
            max-pooled (stride 2) from the last one.
        fusion: ``'fai'`` (``H = (1-α)Ḡ + αF̄``) or ``'sum'`` (``H = Ḡ + F̄``,
            ablation, no weight generator).
        alpha_channels: Channels of α: 1 (position-wise, the paper) or
            ``out_channels`` (per channel).
        ema_group_channels: Channels per group of the EMA attention on the
            local features (the authors: 8, at every level).
        multiscale_conv: ``'full'`` (the authors) or ``'depthwise'`` KxK convs
            of the ViT branch, see :class:`MultiScaleConv`.
        vit_channel_attention: Channel attention on the ViT hidden states:
            ``'per_level'``, one :class:`ChannelAttention` per level (reduction
            4, GELU, biases), or ``'shared'`` (the authors' code), one module
            for all levels (reduction 16, ReLU, no biases; ~3.1M fewer
            parameters at ViT-H sizes).
        sampling_norm: Norm between the transposed convs of
            :class:`ScaleAwareSampling` (``norm_cfg``); False (the authors'
            code): GELU only.
        norm_cfg: Norm of the conv blocks before the fusion.
        local_strides: Stride of each local feature.
        vit_stride: Stride of the encoder's features: one number or one per
            level (the backbone's ``level_strides``).
        init_cfg: Initialization config.
    """

    def __init__(self,
                 vit_channels: Union[int, Sequence[int]] = 1280,
                 local_channels: Sequence[int] = (256, 512, 1024, 2048),
                 out_channels: int = 256,
                 num_outs: int = 5,
                 fusion: str = 'fai',
                 alpha_channels: int = 1,
                 ema_group_channels: int = 8,
                 multiscale_conv: str = 'full',
                 vit_channel_attention: str = 'per_level',
                 sampling_norm: bool = True,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 local_strides: Sequence[int] = (4, 8, 16, 32),
                 vit_stride: Union[int, Sequence[int]] = 16,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_choice(fusion, FUSIONS, 'model.neck.fusion', ConfigError)
        if len(local_strides) != len(local_channels):
            raise ConfigError(
                f'model.neck.local_strides {tuple(local_strides)} and local_channels '
                f'{tuple(local_channels)} must have the same length')
        if num_outs < len(local_channels):
            raise ConfigError(
                f'model.neck.num_outs ({num_outs}) must be >= the number of levels '
                f'({len(local_channels)})')
        self.fusion = fusion
        self.num_levels = len(local_channels)
        self.num_outs = num_outs
        self.local_strides = tuple(local_strides)
        vit_channels = self._per_level('vit_channels', vit_channels)
        vit_stride = self._per_level('vit_stride', vit_stride)

        bad = [c for c in local_channels if c % ema_group_channels]
        if ema_group_channels < 1 or bad:
            raise ConfigError(
                f'model.neck.ema_group_channels ({ema_group_channels}) must divide every '
                f'local channel count, not {bad}')
        self.local_branches = nn.ModuleList(
            nn.Sequential(
                EMA(c, groups=c // ema_group_channels),
                ConvModule(c, out_channels, 1, norm_cfg=norm_cfg,
                           act_cfg=dict(type='ReLU')))
            for c in local_channels)
        self._build_vit_branches(
            vit_channels, out_channels, attention=vit_channel_attention,
            sampling_norm=sampling_norm, multiscale_conv=multiscale_conv,
            norm_cfg=norm_cfg, vit_stride=vit_stride)
        if fusion == 'fai':
            self.weight_generators = nn.ModuleList(
                WeightGenerator(out_channels, alpha_channels=alpha_channels,
                                norm_cfg=norm_cfg)
                for _ in local_channels)
        self.fpn_convs = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(out_channels, out_channels, 3, padding=1,
                          bias=False), LayerNorm2d(out_channels))
            for _ in local_channels)

    def _per_level(self, name: str, value: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        values = (value,) * self.num_levels if isinstance(value, int) else tuple(value)
        if len(values) != self.num_levels:
            raise ConfigError(f'model.neck.{name} {values} must give one value per level '
                              f'({self.num_levels}) or one for all')
        return values

    def _build_vit_branches(self, vit_channels: Sequence[int], out_channels: int, *,
                            attention: str, sampling_norm: bool,
                            multiscale_conv: str, norm_cfg: ConfigType,
                            vit_stride: Sequence[int]) -> None:
        """``F_v → F̄_v``: channel attention, :class:`MultiScaleConv`,
        :class:`ScaleAwareSampling` to the level's stride.

        The attention is ``vit_branches[v][0]`` per level, or the one
        ``vit_channel_attention`` shared by all levels; the other place holds
        an identity, so that the keys of both layouts stay as they are.
        """
        check_choice(attention, VIT_CHANNEL_ATTENTIONS, 'model.neck.vit_channel_attention',
                     ConfigError)
        if not isinstance(sampling_norm, bool):
            raise ConfigError(
                f'model.neck.sampling_norm must be True or False, got {sampling_norm!r}')
        shared = attention == 'shared'
        if shared and len(set(vit_channels)) > 1:
            raise ConfigError(
                "model.neck.vit_channel_attention='shared' needs the same channels at every "
                f'level, got {tuple(vit_channels)}: use \'per_level\'')
        self.vit_channel_attention = ChannelAttention(
            vit_channels[0], reduction=16, act_cfg=dict(type='ReLU'),
            bias=False) if shared else nn.Identity()
        self.vit_branches = nn.ModuleList(
            nn.Sequential(
                nn.Identity() if shared else ChannelAttention(c),
                MultiScaleConv(c, out_channels,
                               conv=multiscale_conv, norm_cfg=norm_cfg),
                ScaleAwareSampling(out_channels, in_stride=vs, out_stride=s,
                                   norm_cfg=norm_cfg if sampling_norm else None))
            for c, vs, s in zip(vit_channels, vit_stride, self.local_strides))

    def fuse(self, vit_feats: Sequence[Tensor],
             local_feats: Sequence[Tensor]) -> List[Tensor]:
        """The fused maps ``H_v``, one per level, before the FPN."""
        if len(vit_feats) != self.num_levels or \
                len(local_feats) != self.num_levels:
            raise ValueError(
                f'expected {self.num_levels} ViT and local features, got '
                f'{len(vit_feats)} and {len(local_feats)}')
        fused = []
        for v in range(self.num_levels):
            g = self.local_branches[v](local_feats[v])
            f = self.vit_branches[v](self.vit_channel_attention(vit_feats[v]))
            if f.shape[-2:] != g.shape[-2:]:
                raise ValueError(
                    f'level {v}: ViT feature {tuple(vit_feats[v].shape[-2:])} '
                    f'resampled to stride {self.local_strides[v]} has size '
                    f'{tuple(f.shape[-2:])}, but the local feature has '
                    f'{tuple(g.shape[-2:])}; pad the image to a multiple of '
                    'the largest stride')
            if self.fusion == 'fai':
                alpha = self.weight_generators[v](g, f)
                fused.append((1 - alpha) * g + alpha * f)
            else:
                fused.append(g + f)
        return fused

    def forward(self, vit_feats: Sequence[Tensor],
                local_feats: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        fused = self.fuse(vit_feats, local_feats)
        # Top-down pathway, coarse to fine.
        for v in range(self.num_levels - 1, 0, -1):
            fused[v - 1] = fused[v - 1] + F.interpolate(
                fused[v], size=fused[v - 1].shape[-2:], mode='nearest')
        outs = [conv(h) for conv, h in zip(self.fpn_convs, fused)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
