"""SAM 1 and SAM 2 mask decoders behind one interface for BiPA's mask branch.

Both are the ``segment_anything`` / ``sam2`` classes themselves (same
submodules, so the same checkpoint keys), with what BiPA's mask head needs:

- :meth:`decode_single`: single-mask logits and IoU predictions for the
  instances of several images in one call, the dense prompt ρ added where
  each model adds its ``no_mask_embed``;
- :meth:`project_features`: the encoder's extra features as the decoder
  reads them (SAM 2's high-resolution path; nothing for SAM 1);
- ``pads_box_prompt``: whether the model's box prompt ends with a
  padding point (SAM 2 embeds a box as two corner points plus
  ``not_a_point_embed``; SAM 1 as the two corners).
"""
from typing import Sequence, Tuple

import torch
from mmdet.registry import MODELS
from sam2.modeling.sam.mask_decoder import MaskDecoder as SAM2Decoder
from segment_anything.modeling import MaskDecoder, TwoWayTransformer
from torch import Tensor

from .sam2_parts import build_sam2_transformer


class SingleMaskDecoding:
    """SAM's ``MaskDecoder.predict_masks`` restricted to its single-mask output
    (mask token 0), for the instances of several images in one call: the
    models' own methods take one image at a time and also run the three
    multi-mask hypernetworks."""

    pads_box_prompt = False
    sam_version = 1

    def output_tokens(self) -> Tensor:
        """The decoder's learned query tokens, before the prompt tokens."""
        return torch.cat([self.iou_token.weight, self.mask_tokens.weight])

    def project_features(self, features: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        return ()

    def upscale(self, src: Tensor, features: Sequence[Tensor], img_inds: Tensor) -> Tensor:
        return self.output_upscaling(src)

    def decode_single(self, image_embeddings: Tensor, tokens: Tensor, img_inds: Tensor,
                      image_pe: Tensor, dense_prompt: Tensor,
                      features: Sequence[Tensor] = ()) -> Tuple[Tensor, Tensor]:
        """Single-mask logits ``(N, 1, 4h, 4w)`` and IoU predictions ``(N,)``.

        ``image_embeddings``: ``(B, D, h, w)``; ``tokens``: ``(N, T, D)`` sparse
        prompts; ``img_inds``: ``(N,)`` image of each instance; ``image_pe``:
        ``(1, D, h, w)``; ``dense_prompt``: ``(D,)``, added at every position
        (the model's ``no_mask_embed`` when there is no mask prompt);
        ``features``: :meth:`project_features` of the batch.
        """
        n = tokens.shape[0]
        dtype = image_embeddings.dtype
        output_tokens = self.output_tokens()
        queries = torch.cat([output_tokens.expand(n, -1, -1).to(dtype), tokens.to(dtype)], dim=1)
        src = image_embeddings[img_inds] + dense_prompt.to(dtype).view(1, -1, 1, 1)
        pos = image_pe.to(dtype).expand(n, -1, -1, -1)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos, queries)
        upscaled = self.upscale(src.transpose(1, 2).view(b, c, h, w), features, img_inds)
        first = output_tokens.shape[0] - self.num_mask_tokens - 1  # the IoU token's index
        hyper = self.output_hypernetworks_mlps[0](hs[:, first + 1, :])
        masks = (hyper.unsqueeze(1) @ upscaled.flatten(2)).view(n, 1, *upscaled.shape[-2:])
        iou = self.iou_prediction_head(hs[:, first, :])[:, 0]
        return masks, iou


@MODELS.register_module()
class SAMMaskDecoder(SingleMaskDecoding, MaskDecoder):
    """SAM's mask decoder (3 multi-mask outputs + 1, IoU head of depth 3)."""

    def __init__(self, *, embed_dim: int = 256, mlp_dim: int = 2048, depth: int = 2,
                 num_heads: int = 8) -> None:
        super().__init__(
            num_multimask_outputs=3, transformer_dim=embed_dim, iou_head_depth=3,
            iou_head_hidden_dim=256,
            transformer=TwoWayTransformer(depth=depth, embedding_dim=embed_dim, mlp_dim=mlp_dim,
                                          num_heads=num_heads))


@MODELS.register_module()
class SAM2MaskDecoder(SingleMaskDecoding, SAM2Decoder):
    """SAM 2.1's mask decoder as ``SAM2Base`` builds it for images: the
    high-resolution path (``conv_s0``/``conv_s1`` on the FPN's stride-4/8
    maps, added in the upscaling), a sigmoid IoU head, and the object-score
    token, which takes part in the transformer (its head is not used: images
    have no 'object absent' case here)."""

    pads_box_prompt = True
    sam_version = 2

    def __init__(self, *, embed_dim: int = 256, mlp_dim: int = 2048, depth: int = 2,
                 num_heads: int = 8) -> None:
        super().__init__(
            num_multimask_outputs=3, transformer_dim=embed_dim, iou_head_depth=3,
            iou_head_hidden_dim=256,
            transformer=build_sam2_transformer(embed_dim=embed_dim, mlp_dim=mlp_dim,
                                               depth=depth, num_heads=num_heads),
            use_high_res_features=True, iou_prediction_use_sigmoid=True, pred_obj_scores=True,
            pred_obj_scores_mlp=True, use_multimask_token_for_obj_ptr=True)

    def output_tokens(self) -> Tensor:
        return torch.cat([self.obj_score_token.weight, self.iou_token.weight,
                          self.mask_tokens.weight])

    def project_features(self, features: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        if len(features) != 2:
            raise ValueError("SAM 2's decoder reads the encoder's stride-4 and stride-8 "
                             f'features, got {len(features)} maps: use SAM2HieraAdapter')
        return self.conv_s0(features[0]), self.conv_s1(features[1])

    def upscale(self, src: Tensor, features: Sequence[Tensor], img_inds: Tensor) -> Tensor:
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        feat_s0, feat_s1 = (f[img_inds].to(src.dtype) for f in features)
        upscaled = act1(ln1(dc1(src) + feat_s1))
        return act2(dc2(upscaled) + feat_s0)
