"""SAM's ViT image encoder, frozen, with trainable UA-ViT adapters."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from segment_anything.modeling.image_encoder import Block, window_partition, window_unpartition

from ..layers import rel_pos_attention
from ..sam_parts import build_image_encoder, resolve_sam_arch
from .adapted_encoder import AdaptedEncoder
from .encoder_output import EncoderOutput


@MODELS.register_module()
class SAMViTAdapter(AdaptedEncoder):
    """SAM ViT image encoder with UA-ViT adapters (colour, MLP, optional space).

    Returns an :class:`EncoderOutput`: the SAM-neck embedding
    ``(B, 256, H/16, W/16)`` and, as its levels, the outputs of the blocks in
    ``out_indices`` as ``(B, C, H/16, W/16)`` maps for the FAI neck (every
    level ``embed_dim`` channels at the patch stride).

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
                 out_indices: Optional[Sequence[int]] = None,
                 **adapters) -> None:
        arch_cfg = self.resolve_arch(arch)
        encoder = build_image_encoder(arch_cfg)
        super().__init__(encoder, encoder.blocks, [arch_cfg['embed_dim']] * arch_cfg['depth'],
                         **adapters)
        self.arch = arch_cfg
        self.out_indices = tuple(
            arch_cfg['global_attn_indexes'] if out_indices is None else out_indices)
        self.check_block_indices('out_indices', self.out_indices, arch_cfg['depth'])
        self.embed_dim = arch_cfg['embed_dim']
        self.out_channels = arch_cfg['out_chans']
        self.level_channels, self.level_strides = self.level_spec(arch_cfg, self.out_indices)

    resolve_arch = staticmethod(resolve_sam_arch)
    sam_version = 1  # SAM's decoder and checkpoint layout

    @classmethod
    def level_spec(cls, arch: Union[str, dict] = 'vit_h',
                   out_indices: Optional[Sequence[int]] = None,
                   **_) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """``(level_channels, level_strides)`` of the backbone a config builds,
        without building it."""
        cfg = resolve_sam_arch(arch)
        n = len(cfg['global_attn_indexes'] if out_indices is None else out_indices)
        return (cfg['embed_dim'],) * n, (cfg['patch_size'],) * n

    # --- forward -----------------------------------------------------------

    @property
    def encoder_blocks(self):
        return self.encoder.blocks

    def _attention(self, block: Block, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """SAM's block attention (``norm1`` + windowing + rel-pos MHSA) via SDPA;
        the shortcut is the stream itself."""
        with self.frozen_grad():
            attn = block.attn
            h = block.norm1(x)
            hw = h.shape[1:3]
            if block.window_size > 0:
                h, pad_hw = window_partition(h, block.window_size)
            b, hh, ww, _ = h.shape
            qkv = attn.qkv(h).reshape(b, hh * ww, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            out = rel_pos_attention(q, k, v, attn.rel_pos_h, attn.rel_pos_w, (hh, ww),
                                    scale=attn.scale, fold_bias=block.window_size == 0)
            out = attn.proj(out.transpose(1, 2).reshape(b, hh, ww, -1))
            if block.window_size > 0:
                out = window_unpartition(out, block.window_size, pad_hw, hw)
        return x, out

    def _pos_embed(self, hw: Tuple[int, int]) -> torch.Tensor:
        pos = self.encoder.pos_embed
        if pos.shape[1:3] != hw:  # inputs other than img_size: resize the grid
            pos = F.interpolate(pos.permute(0, 3, 1, 2), size=hw, mode='bicubic',
                                align_corners=False).permute(0, 2, 3, 1)
        return pos

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        patch = self.encoder.patch_embed.proj.stride[0]
        if x.shape[-2] % patch or x.shape[-1] % patch:
            raise ValueError(f'input size {tuple(x.shape[-2:])} is not a multiple of the '
                             f'patch size {patch}; pad it (pad_size_divisor)')
        with torch.no_grad():
            x = self.encoder.patch_embed(x)
            x = x + self._pos_embed(x.shape[1:3])
        x, hidden = self._forward_blocks(x, self.out_indices)
        embedding = self.encoder.neck(x.permute(0, 3, 1, 2))
        return EncoderOutput(embedding, hidden, self.level_strides)
