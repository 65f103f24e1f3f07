"""SAM 2.1's Hiera image encoder, frozen, with trainable UA-ViT adapters."""
import contextlib
from typing import Optional, Sequence, Tuple, Union

import torch
from mmdet.registry import MODELS
from sam2.modeling.backbones.hieradet import MultiScaleBlock, do_pool
from sam2.modeling.backbones.utils import window_partition, window_unpartition
from torch import nn

from ..sam2_parts import (
    build_sam2_image_encoder,
    decoder_inputs,
    resolve_sam2_arch,
    sam2_block_levels,
    sam2_stage_ends,
)
from .adapted_encoder import AdaptedEncoder
from .encoder_output import EncoderOutput


@MODELS.register_module()
class SAM2HieraAdapter(AdaptedEncoder):
    """SAM 2.1 image encoder (Hiera trunk + FPN neck) with UA-ViT adapters.

    Returns an :class:`EncoderOutput`:

    - ``image_embedding``: the FPN's stride-16 map plus SAM 2's
      ``no_mem_embed``, as SAM 2's image predictor gives its decoder;
    - ``levels``: the outputs of the blocks ``out_indices`` for the FAI neck,
      by default Hiera's four stage outputs (``level_channels``
      ``C, 2C, 4C, 8C`` at ``level_strides`` 4, 8, 16, 32);
    - ``decoder_features``: the FPN's stride-4 and stride-8 maps, which SAM
      2's mask decoder projects (``conv_s0``, ``conv_s1``) into its
      high-resolution path.

    The adapters sit in the blocks as in :class:`SAMViTAdapter`, sized to
    each block's width; ``adapter_indices`` defaults to every second block
    from ``depth // 4`` (Hiera-L: 12, 14, ..., 46). With
    ``adapter_init='identity'`` the encoder computes ``sam2``'s own image
    encoder at step 0. At a stage change the block's shortcut (``norm1``,
    a linear projection and max-pooling) is part of the residual stream, so
    in ``'residual'`` mode gradients pass through it.

    Args:
        arch: ``'hiera_t' | 'hiera_s' | 'hiera_b+' | 'hiera_l'`` or a dict
            (:func:`resolve_sam2_arch`).
        out_indices: blocks whose outputs are the levels (default: the last
            block of each stage).
        Others: as :class:`SAMViTAdapter`.
    """

    sam_version = 2  # SAM 2's decoder and checkpoint layout

    @classmethod
    def level_spec(cls, arch: Union[str, dict] = 'hiera_l',
                   out_indices: Optional[Sequence[int]] = None,
                   **_) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """``(level_channels, level_strides)`` of the backbone a config builds,
        without building it."""
        cfg = resolve_sam2_arch(arch)
        return sam2_block_levels(cfg, sam2_stage_ends(cfg) if out_indices is None
                                 else out_indices)

    def __init__(self,
                 arch: Union[str, dict] = 'hiera_l',
                 *,
                 out_indices: Optional[Sequence[int]] = None,
                 **adapters) -> None:
        arch_cfg = resolve_sam2_arch(arch)
        encoder = build_sam2_image_encoder(arch_cfg)
        blocks = encoder.trunk.blocks
        super().__init__(encoder, blocks, [b.dim_out for b in blocks], **adapters)
        self.arch = arch_cfg
        self.out_indices = tuple(sam2_stage_ends(arch_cfg) if out_indices is None
                                 else out_indices)
        self.check_block_indices('out_indices', self.out_indices, len(blocks))
        # SAM 2's image predictor adds it to the decoder's embedding (its key
        # in SAM 2's checkpoints: no_mem_embed)
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, arch_cfg['d_model']),
                                         requires_grad=False)
        self.out_channels = arch_cfg['d_model']
        self.level_channels, self.level_strides = self.level_spec(arch_cfg, self.out_indices)

    @property
    def encoder_blocks(self) -> nn.ModuleList:
        return self.encoder.trunk.blocks

    def _attention(self, block: MultiScaleBlock,
                   x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``MultiScaleBlock``'s shortcut and its (q-pooled, windowed) attention."""
        stage_change = block.dim != block.dim_out  # the stream is normed, projected, pooled
        with contextlib.nullcontext() if stage_change else self.frozen_grad():
            n = block.norm1(x)  # at a stage change part of the residual stream
        shortcut = do_pool(block.proj(n), block.pool) if stage_change else x
        with self.frozen_grad():
            h, hw, window = n, n.shape[1:3], block.window_size
            if window > 0:
                h, pad_hw = window_partition(h, window)
            h = block.attn(h)
        if block.q_stride and window > 0:  # the windows shrank with the queries
            window = block.window_size // block.q_stride[0]
            hw = shortcut.shape[1:3]
            pad_hw = (hw[0] + (window - hw[0] % window) % window,
                      hw[1] + (window - hw[1] % window) % window)
        if block.window_size > 0:
            with self.frozen_grad():
                h = window_unpartition(h, window, pad_hw, hw)
        return shortcut, h

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        trunk = self.encoder.trunk
        stride = self.arch['patch_stride'] * 8
        if x.shape[-2] % stride or x.shape[-1] % stride:
            raise ValueError(f'input size {tuple(x.shape[-2:])} is not a multiple of '
                             f"Hiera's largest stride {stride}; pad it (pad_size_divisor)")
        with torch.no_grad():
            x = trunk.patch_embed(x)
            x = x + trunk._get_pos_embed(x.shape[1:3])
        outputs = sorted(set(self.out_indices) | set(trunk.stage_ends))
        _, maps = self._forward_blocks(x, outputs)
        maps = dict(zip(outputs, maps))
        features, _ = self.encoder.neck([maps[i] for i in trunk.stage_ends])
        embedding, high_res = decoder_inputs(features[:len(features) - self.encoder.scalp],
                                             self.no_mem_embed)
        return EncoderOutput(embedding, [maps[i] for i in self.out_indices], self.level_strides,
                             decoder_features=high_res)
