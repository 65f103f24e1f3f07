"""SAM 2.1's image encoder (Hiera + FPN neck) and mask decoder as ``sam2`` builds them.

One place for the arch table and the constructor arguments (those of
``sam2/configs/sam2.1/sam2.1_hiera_*.yaml`` and ``SAM2Base._build_sam_heads``),
so that every model holding SAM 2 parts has the key layout of SAM 2.1's
checkpoints.
"""
from typing import Dict, Sequence, Tuple, Union

import torch
from sam2.modeling.backbones.hieradet import Hiera
from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.backbones.utils import PatchEmbed
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.sam.transformer import TwoWayTransformer
from torch.overrides import TorchFunctionMode

from ..utils import ConfigError, check_choice

# sam2.1_hiera_{t,s,b+,l}.yaml (trunk arguments; Hiera's defaults elsewhere)
SAM2_ARCHS: Dict[str, dict] = {
    'hiera_t': dict(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
                    window_pos_embed_bkg_spatial_size=(7, 7)),
    'hiera_s': dict(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2),
                    global_att_blocks=(7, 10, 13), window_pos_embed_bkg_spatial_size=(7, 7)),
    'hiera_b+': dict(embed_dim=112, num_heads=2),
    'hiera_l': dict(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4),
                    global_att_blocks=(23, 33, 43), window_pos_embed_bkg_spatial_size=(7, 7),
                    window_spec=(8, 4, 16, 8)),
}
_ARCH_DEFAULTS = dict(stages=(2, 3, 16, 3), global_att_blocks=(12, 16, 20),
                      window_pos_embed_bkg_spatial_size=(14, 14), window_spec=(8, 4, 14, 7),
                      img_size=1024, d_model=256, patch_stride=4, patch_kernel_size=7,
                      fpn_top_down_levels=(2, 3))
_TRUNK_KEYS = ('embed_dim', 'num_heads', 'stages', 'global_att_blocks',
               'window_pos_embed_bkg_spatial_size', 'window_spec')


def resolve_sam2_arch(arch: Union[str, dict]) -> dict:
    """``'hiera_t' | 'hiera_s' | 'hiera_b+' | 'hiera_l'`` or a dict with
    ``embed_dim`` and ``num_heads`` (and optionally ``stages``,
    ``global_att_blocks``, ``window_pos_embed_bkg_spatial_size``,
    ``window_spec``, ``img_size``, ``d_model``, ``patch_stride``,
    ``patch_kernel_size``, ``fpn_top_down_levels``) -> the full arch.

    ``patch_stride`` (SAM 2: 4) sets the stride of the first stage; the
    stages are at ``patch_stride * 2**i``, and the decoder's image embedding
    is the third (stride 16 in SAM 2)."""
    if isinstance(arch, str):
        check_choice(arch, SAM2_ARCHS, 'model.backbone.arch', ConfigError, alternative='a dict')
        arch = SAM2_ARCHS[arch]
    missing = {'embed_dim', 'num_heads'} - set(arch)
    if missing:
        raise ConfigError(f'model.backbone.arch lacks {sorted(missing)}')
    cfg = {**_ARCH_DEFAULTS, **arch}
    if len(cfg['stages']) != 4 or len(cfg['window_spec']) != 4:
        raise ConfigError('model.backbone.arch: SAM 2 has 4 Hiera stages, got stages '
                          f'{tuple(cfg["stages"])} and window_spec {tuple(cfg["window_spec"])}')
    for key in ('stages', 'global_att_blocks', 'window_pos_embed_bkg_spatial_size',
                'window_spec', 'fpn_top_down_levels'):
        cfg[key] = tuple(cfg[key])
    return cfg


def sam2_stage_ends(arch: dict) -> tuple:
    """The last block of each Hiera stage."""
    return tuple(sum(arch['stages'][:i + 1]) - 1 for i in range(4))


def sam2_block_levels(arch: dict, blocks: Sequence[int]) -> Tuple[tuple, tuple]:
    """``(channels, strides)`` of the outputs of Hiera's ``blocks``
    (``dim_mul=2`` and a 2x pooling per stage)."""
    ends = sam2_stage_ends(arch)
    stages = [sum(i > end for end in ends[:-1]) for i in blocks]
    return (tuple(arch['embed_dim'] * 2**s for s in stages),
            tuple(arch['patch_stride'] * 2**s for s in stages))


def sam2_stage_strides(arch: dict) -> tuple:
    """Strides of Hiera's four stage outputs."""
    return sam2_block_levels(arch, sam2_stage_ends(arch))[1]


class host_linspace(TorchFunctionMode):
    """``torch.linspace`` on the CPU whatever the default device: Hiera reads
    its drop-path rates with ``.item()``, which a model built on the meta
    device (parameter counts, key checks) cannot answer otherwise."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.linspace:
            kwargs = {**kwargs, 'device': 'cpu'}
        return func(*args, **kwargs)


def build_sam2_image_encoder(arch: Union[str, dict]) -> ImageEncoder:
    """SAM 2.1's image encoder: Hiera trunk, FPN neck to ``d_model`` channels
    with sine position encodings, the stride-32 level dropped (``scalp=1``)."""
    cfg = resolve_sam2_arch(arch)
    with host_linspace():
        trunk = Hiera(**{k: cfg[k] for k in _TRUNK_KEYS})
    if (cfg['patch_stride'], cfg['patch_kernel_size']) != (4, 7):
        k, s = cfg['patch_kernel_size'], cfg['patch_stride']
        trunk.patch_embed = PatchEmbed(kernel_size=(k, k), stride=(s, s),
                                       padding=(k // 2, k // 2), embed_dim=cfg['embed_dim'])
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=cfg['d_model'], normalize=True,
                                                temperature=10000),
        d_model=cfg['d_model'],
        backbone_channel_list=list(sam2_block_levels(cfg, sam2_stage_ends(cfg))[0])[::-1],
        fpn_top_down_levels=list(cfg['fpn_top_down_levels']), fpn_interp_model='nearest')
    return ImageEncoder(trunk=trunk, neck=neck, scalp=1)


def decoder_inputs(fpn: Sequence[torch.Tensor],
                   no_mem_embed: torch.Tensor) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
    """What SAM 2's image predictor gives its decoder from the FPN's maps (the
    stride-32 one already dropped): the stride-16 map plus ``no_mem_embed``
    as the image embedding, and the finer maps for the high-resolution path."""
    return fpn[-1] + no_mem_embed.view(1, -1, 1, 1), tuple(fpn[:-1])


def build_sam2_transformer(*, embed_dim: int = 256, mlp_dim: int = 2048, depth: int = 2,
                           num_heads: int = 8) -> TwoWayTransformer:
    """The two-way transformer of SAM 2's mask decoder."""
    return TwoWayTransformer(depth=depth, embedding_dim=embed_dim, mlp_dim=mlp_dim,
                             num_heads=num_heads)
