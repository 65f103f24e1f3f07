import math
from typing import Optional, Sequence

import torch
from mmdet.registry import MODELS
from torch import nn

from ...utils import ConfigError, check_choice

GENERATOR_ARCHS = ('ours', 'authors')
TOKEN_FORMS = ('sincos', 'sin_plus')


@MODELS.register_module()
class SparsePromptGenerator(nn.Module):
    """RoI features ``(N, C, S, S)`` -> ``num_tokens`` sparse prompt tokens ``(N, T, D)``.

    A stride-2 3x3 conv (optionally BN), ReLU, then an MLP to ``T`` tokens.

    ``arch``:
      - ``'ours'``: no norm, one ``hidden_dim``-wide hidden layer, tokens
        ``[sin(t), cos(t)]`` from ``T x D/2`` values (every token has norm
        ``sqrt(D/2)``);
      - ``'authors'`` (the authors' code, 4.5M parameters at ViT-H): BN after
        the conv, two hidden layers of width ``D``, tokens ``sin(u) + v`` from
        ``T x 2 x D`` values (``u``, ``v`` interleaved).

    ``hidden_dims``, ``norm`` and ``token_form`` override the arch's values.
    """

    def __init__(self, *, in_channels: int = 256, roi_size: int = 14, num_tokens: int = 5,
                 embed_dim: int = 256, arch: str = 'ours', hidden_dim: int = 1024,
                 hidden_dims: Optional[Sequence[int]] = None, norm: Optional[bool] = None,
                 token_form: Optional[str] = None) -> None:
        super().__init__()
        key = 'model.roi_head.mask_head.prompt_generator'
        check_choice(arch, GENERATOR_ARCHS, f'{key}.arch', ConfigError)
        preset = (dict(hidden_dims=(hidden_dim,), norm=False, token_form='sincos')
                  if arch == 'ours' else
                  dict(hidden_dims=(embed_dim, embed_dim), norm=True, token_form='sin_plus'))
        hidden_dims = tuple(preset['hidden_dims'] if hidden_dims is None else hidden_dims)
        norm = preset['norm'] if norm is None else norm
        token_form = preset['token_form'] if token_form is None else token_form
        check_choice(token_form, TOKEN_FORMS, f'{key}.token_form', ConfigError)
        if token_form == 'sincos' and embed_dim % 2:
            raise ConfigError(f'{key}: sin/cos tokens need an even embed_dim, got {embed_dim}')
        self.num_tokens = num_tokens
        self.embed_dim = embed_dim
        self.token_form = token_form
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, stride=2, padding=1),
            *([nn.BatchNorm2d(in_channels)] if norm else []), nn.ReLU(inplace=True))
        pooled = math.ceil(roi_size / 2)
        widths = (in_channels * pooled * pooled, *hidden_dims)
        layers = [nn.Flatten(1)]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
        per_token = embed_dim // 2 if token_form == 'sincos' else 2 * embed_dim
        layers.append(nn.Linear(widths[-1], num_tokens * per_token))
        self.mlp = nn.Sequential(*layers)

    def forward(self, roi_feats: torch.Tensor) -> torch.Tensor:
        per_token = self.mlp[-1].out_features // self.num_tokens
        t = self.mlp(self.conv(roi_feats)).view(-1, self.num_tokens, per_token)
        if self.token_form == 'sincos':
            return torch.cat([torch.sin(t), torch.cos(t)], dim=-1)
        return torch.sin(t[..., ::2]) + t[..., 1::2]
