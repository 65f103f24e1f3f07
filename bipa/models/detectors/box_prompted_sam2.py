"""SAM 2.1 itself, prompted with ground-truth boxes: pre-training and oracle-box eval."""
from typing import Tuple, Union

import torch
from mmdet.registry import MODELS
from mmengine.logging import MessageHub
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from torch import Tensor, nn

from ..backbones.encoder_output import EncoderOutput
from ..mask_decoders import SAM2MaskDecoder
from ..sam2_parts import (
    build_sam2_image_encoder,
    decoder_inputs,
    resolve_sam2_arch,
    sam2_stage_strides,
)
from .box_prompted_sam import BoxPromptedSAM


@MODELS.register_module()
class BoxPromptedSAM2(BoxPromptedSAM):
    """:class:`BoxPromptedSAM` on SAM 2.1: its image encoder (Hiera + FPN), its
    prompt encoder (a box is two corner points and a padding point, as in
    ``SAM2ImagePredictor``) and its mask decoder with the high-resolution
    path, under the names of SAM 2.1's checkpoints (``image_encoder``,
    ``sam_prompt_encoder``, ``sam_mask_decoder``, ``no_mem_embed``), so a
    checkpoint saved by mmengine loads as ``BiPA(sam_checkpoint=...)`` on
    :class:`SAM2HieraAdapter`.

    Args:
        arch: SAM 2 arch name or dict (see :func:`resolve_sam2_arch`).
        high_res_after: training iterations before the decoder's
            high-resolution path joins (0: from the start). Until then the
            projections ``conv_s0``/``conv_s1`` stay at zero, their
            initialisation, so the decoder reads the image embedding alone.
            Pre-training the tiny SAM 2 from scratch with the path on from
            the start stalls (docs/sam2.md, "Why high_res_after").
        Others: as :class:`BoxPromptedSAM`.
    """

    def __init__(self, arch: Union[str, dict] = 'hiera_t', *, high_res_after: int = 0,
                 **kwargs) -> None:
        super().__init__(arch, **kwargs)
        if high_res_after < 0:
            raise ValueError(f'high_res_after must be >= 0, got {high_res_after}')
        self.high_res_after = high_res_after
        if high_res_after:
            for conv in (self.sam_mask_decoder.conv_s0, self.sam_mask_decoder.conv_s1):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def build_sam(self, arch: Union[str, dict], *, mask_in_chans: int, **decoder) -> None:
        arch_cfg = resolve_sam2_arch(arch)
        self.img_size = arch_cfg['img_size']
        grid = self.img_size // sam2_stage_strides(arch_cfg)[2]
        embed_dim = arch_cfg['d_model']
        self.image_encoder = build_sam2_image_encoder(arch_cfg)
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=embed_dim, image_embedding_size=(grid, grid),
            input_image_size=(self.img_size, self.img_size), mask_in_chans=mask_in_chans)
        self.sam_mask_decoder = SAM2MaskDecoder(embed_dim=embed_dim, **decoder)
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        nn.init.trunc_normal_(self.no_mem_embed, std=0.02)

    def extract_feat(self, batch_inputs: Tensor) -> EncoderOutput:
        """The decoder's image embedding (FPN stride 16 + ``no_mem_embed``) and
        its high-resolution features (FPN strides 4 and 8)."""
        self.check_input(batch_inputs)
        embedding, high_res = decoder_inputs(self.image_encoder(batch_inputs)['backbone_fpn'],
                                             self.no_mem_embed)
        return EncoderOutput(embedding, [], (), decoder_features=high_res)

    def decode(self, feats: EncoderOutput, boxes: Tensor,
               img_inds: Tensor) -> Tuple[Tensor, Tensor]:
        labels = boxes.new_tensor([2, 3], dtype=torch.int).expand(len(boxes), 2)
        sparse, _ = self.sam_prompt_encoder(points=(boxes.reshape(-1, 2, 2), labels),
                                            boxes=None, masks=None)
        decoder = self.sam_mask_decoder
        features = decoder.project_features(feats.decoder_features)
        if self.training and MessageHub.get_current_instance().get_info('iter', 0) < \
                self.high_res_after:  # the path not yet on: its zero maps, no gradient
            features = tuple(f.detach() for f in features)
        return decoder.decode_single(feats.image_embedding, sparse, img_inds,
                                     self.sam_prompt_encoder.get_dense_pe(),
                                     self.sam_prompt_encoder.no_mask_embed.weight[0], features)
