"""SAM's ViT image encoder, frozen, with trainable UA-ViT adapters."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from segment_anything.modeling.image_encoder import Block, window_partition, window_unpartition
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...utils import ConfigError
from ..layers import BlockAdapter, rel_pos_attention
from ..sam_parts import build_image_encoder, resolve_sam_arch

GRAD_MODES = ('residual', 'checkpoint', 'exact')
MLP_ADAPTER_INPUTS = ('pre_norm', 'post_norm')


@MODELS.register_module()
class SAMViTAdapter(BaseModule):
    """SAM ViT image encoder with UA-ViT adapters (colour, MLP, optional space).

    Returns ``(image_embedding, hidden_states)``: the SAM-neck embedding
    ``(B, 256, H/16, W/16)`` and the outputs of the blocks in ``out_indices``
    as ``(B, C, H/16, W/16)`` maps for the FAI neck.

    ``out_indices`` defaults to SAM's global-attention blocks, 0-based
    ``(7, 15, 23, 31)`` for ViT-H: the paper's blocks 8/16/24/32 in 1-based
    numbering, and the only blocks whose tokens have seen the whole image.
    ``adapter_indices`` defaults to every second block from ``depth // 4``
    (ViT-H: 8, 10, ..., 30, the paper's 12 adapted blocks).

    Every ViT weight is frozen. ``grad_mode`` says how gradients from later
    layers reach earlier adapters:

    - ``'residual'`` (default, the authors' scheme): frozen norms, attention
      and MLPs run under ``no_grad``; gradients flow through the residual
      stream and the adapters only. No activation of a frozen computation is
      stored: the least memory and time.
    - ``'checkpoint'``: exact gradients, each block recomputed in backward.
    - ``'exact'``: plain autograd through the frozen blocks (the most memory).

    Args:
        arch: ``'vit_h' | 'vit_l' | 'vit_b'`` or a dict with ``embed_dim``,
            ``depth``, ``num_heads``, ``global_attn_indexes`` and optionally
            ``img_size``, ``patch_size``, ``mlp_ratio``, ``out_chans``,
            ``window_size``.
        adapter_indices: blocks that get adapters.
        out_indices: blocks whose outputs are returned.
        adapter_ratio: bottleneck width as a fraction of the embedding dim.
        mlp_adapter_scale: scale of the MLP adapter (0.5 in the paper).
        use_space_adapter: add the space adapter (authors use it on USIS10K).
        mlp_adapter_input: what the MLP adapter reads, in parallel with the
            block MLP: ``'pre_norm'`` the residual stream before ``norm2`` (the
            authors' code) or ``'post_norm'`` the MLP's own normalised input.
        grad_mode: see above.
        adapter_init: ``'identity'`` (default): every adapter starts as the
            identity (colour gates ``2*sigmoid`` at exactly 1, zero output
            layers in the MLP and space adapters), so at step 0 the encoder
            computes SAM's function and training departs from it;
            ``'random'``: the authors' initialisation, which changes the
            image embedding by 62-72% of its norm before training starts.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'vit_h',
                 *,
                 adapter_indices: Optional[Sequence[int]] = None,
                 out_indices: Optional[Sequence[int]] = None,
                 adapter_ratio: float = 0.25,
                 mlp_adapter_scale: float = 0.5,
                 use_space_adapter: bool = False,
                 mlp_adapter_input: str = 'pre_norm',
                 grad_mode: str = 'residual',
                 adapter_init: str = 'identity',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch_cfg = self.resolve_arch(arch)
        depth = arch_cfg['depth']
        self.arch = arch_cfg
        self.encoder = build_image_encoder(arch_cfg)
        self.adapter_indices = tuple(
            range(depth // 4, depth, 2) if adapter_indices is None else adapter_indices)
        self.out_indices = tuple(
            arch_cfg['global_attn_indexes'] if out_indices is None else out_indices)
        for name, indices in (('adapter_indices', self.adapter_indices),
                              ('out_indices', self.out_indices)):
            bad = [i for i in indices if not 0 <= i < depth]
            if bad:
                raise ConfigError(f'model.backbone.{name} {bad} out of range for a '
                                  f'{depth}-block ViT')
        if grad_mode not in GRAD_MODES:
            raise ConfigError(f'model.backbone.grad_mode must be one of {GRAD_MODES}, '
                              f'got {grad_mode!r}')
        self.grad_mode = grad_mode
        if mlp_adapter_input not in MLP_ADAPTER_INPUTS:
            raise ConfigError(f'model.backbone.mlp_adapter_input must be one of '
                              f'{MLP_ADAPTER_INPUTS}, got {mlp_adapter_input!r}')
        self.mlp_adapter_input = mlp_adapter_input
        self.adapters = nn.ModuleDict({
            str(i): BlockAdapter(arch_cfg['embed_dim'], ratio=adapter_ratio,
                                 mlp_scale=mlp_adapter_scale, use_space=use_space_adapter,
                                 init=adapter_init)
            for i in self.adapter_indices})
        self.embed_dim = arch_cfg['embed_dim']
        self.out_channels = arch_cfg['out_chans']
        self._freeze_encoder()

    resolve_arch = staticmethod(resolve_sam_arch)

    def _freeze_encoder(self) -> None:
        self.encoder.eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> 'SAMViTAdapter':
        super().train(mode)
        self._freeze_encoder()
        return self

    # --- forward -----------------------------------------------------------

    def _attention(self, block: Block, x: torch.Tensor) -> torch.Tensor:
        """SAM's block attention (``norm1`` + windowing + rel-pos MHSA) via SDPA."""
        attn = block.attn
        x = block.norm1(x)
        hw = x.shape[1:3]
        if block.window_size > 0:
            x, pad_hw = window_partition(x, block.window_size)
        b, h, w, _ = x.shape
        qkv = attn.qkv(x).reshape(b, h * w, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = rel_pos_attention(q, k, v, attn.rel_pos_h, attn.rel_pos_w, (h, w),
                                scale=attn.scale, fold_bias=block.window_size == 0)
        out = attn.proj(out.transpose(1, 2).reshape(b, h, w, -1))
        if block.window_size > 0:
            out = window_unpartition(out, block.window_size, pad_hw, hw)
        return out

    def _block(self, index: int, x: torch.Tensor) -> torch.Tensor:
        block = self.encoder.blocks[index]
        adapter = self.adapters[str(index)] if str(index) in self.adapters else None
        exact = self.grad_mode != 'residual'
        with torch.set_grad_enabled(exact and torch.is_grad_enabled()):
            h = self._attention(block, x)
        if adapter is not None:
            h = adapter.attn(h)
        x = x + h
        with torch.set_grad_enabled(exact and torch.is_grad_enabled()):
            n = block.norm2(x)
            m = block.mlp(n)
        if adapter is not None:
            m = m + adapter.mlp(x if self.mlp_adapter_input == 'pre_norm' else n)
        return x + m

    def _pos_embed(self, hw: Tuple[int, int]) -> torch.Tensor:
        pos = self.encoder.pos_embed
        if pos.shape[1:3] != hw:  # inputs other than img_size: resize the grid
            pos = F.interpolate(pos.permute(0, 3, 1, 2), size=hw, mode='bicubic',
                                align_corners=False).permute(0, 2, 3, 1)
        return pos

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        patch = self.encoder.patch_embed.proj.stride[0]
        if x.shape[-2] % patch or x.shape[-1] % patch:
            raise ValueError(f'input size {tuple(x.shape[-2:])} is not a multiple of the '
                             f'patch size {patch}; pad it (pad_size_divisor)')
        with torch.no_grad():
            x = self.encoder.patch_embed(x)
            x = x + self._pos_embed(x.shape[1:3])
        hidden = []
        for i in range(len(self.encoder.blocks)):
            trainable = x.requires_grad or str(i) in self.adapters
            if not (trainable and torch.is_grad_enabled()):
                with torch.no_grad():
                    x = self._block(i, x)
            elif self.grad_mode == 'checkpoint':
                x = checkpoint(self._block, i, x, use_reentrant=False)
            else:
                x = self._block(i, x)
            if i in self.out_indices:
                hidden.append(x.permute(0, 3, 1, 2))
        embedding = self.encoder.neck(x.permute(0, 3, 1, 2))
        return embedding, hidden
