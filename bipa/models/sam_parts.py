"""SAM's image encoder and mask decoder as segment_anything builds them.

One place for the arch table and the constructor arguments, so that every
model holding SAM parts (:class:`SAMViTAdapter`, :class:`SAMPromptMaskHead`,
:class:`BoxPromptedSAM`) has the key layout of SAM's checkpoints.
"""
from functools import partial
from typing import Dict, Union

from segment_anything.modeling import ImageEncoderViT
from torch import nn

from ..utils import ConfigError, check_choice
from .mask_decoders import SAMMaskDecoder

# segment_anything's build_sam_vit_{h,l,b} settings
SAM_ARCHS: Dict[str, dict] = {
    'vit_h': dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
    'vit_l': dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    'vit_b': dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
}
_ARCH_DEFAULTS = dict(img_size=1024, patch_size=16, mlp_ratio=4.0, out_chans=256,
                      window_size=14)


def resolve_sam_arch(arch: Union[str, dict], key: str = 'model.backbone.arch') -> dict:
    """``'vit_h' | 'vit_l' | 'vit_b'`` or a dict with ``embed_dim``, ``depth``,
    ``num_heads``, ``global_attn_indexes`` (and optionally ``img_size``,
    ``patch_size``, ``mlp_ratio``, ``out_chans``, ``window_size``) -> the full
    keyword arguments of ``ImageEncoderViT``'s arch; ``key`` names the config
    key in errors."""
    if isinstance(arch, str):
        check_choice(arch, SAM_ARCHS, key, ConfigError, alternative='a dict')
        arch = SAM_ARCHS[arch]
    required = {'embed_dim', 'depth', 'num_heads', 'global_attn_indexes'}
    missing = required - set(arch)
    if missing:
        raise ConfigError(f'{key} lacks {sorted(missing)}')
    cfg = {**_ARCH_DEFAULTS, **arch}
    cfg['global_attn_indexes'] = tuple(cfg['global_attn_indexes'])
    return cfg


def build_image_encoder(arch: Union[str, dict]) -> ImageEncoderViT:
    """SAM's ViT image encoder (rel-pos attention, LayerNorm eps 1e-6)."""
    return ImageEncoderViT(norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                           qkv_bias=True, rel_pos_zero_init=True, **resolve_sam_arch(arch))


def build_mask_decoder(*, embed_dim: int = 256, mlp_dim: int = 2048, depth: int = 2,
                       num_heads: int = 8) -> SAMMaskDecoder:
    """SAM's mask decoder (3 multi-mask outputs + 1, IoU head of depth 3)."""
    return SAMMaskDecoder(embed_dim=embed_dim, mlp_dim=mlp_dim, depth=depth, num_heads=num_heads)
