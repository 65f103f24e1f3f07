"""Mask head that prompts SAM's frozen decoder with sparse and dense prompts."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.models.utils import empty_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import scale_boxes
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom
from torch import Tensor, nn

from ...utils import ConfigError, check_choice
from .. import mask_decoders  # noqa: F401  (registers the decoders)
from ..mask_prompts import MaskPrompts

ANCHORS = ('none', 'box')
MASK_UPSAMPLES = ('logits', 'probs')


@MODELS.register_module()
class SAMPromptMaskHead(BaseModule):
    """One mask per RoI from SAM's mask decoder (frozen).

    For every RoI the sparse prompt generator turns its RoI features into
    sparse tokens; the decoder gets the image embedding, SAM's dense
    positional encoding, the dense prompt rho (:class:`DensePrompt`) and those
    tokens, and predicts single-mask logits at 1/4 of the input size. Training
    upsamples them to the padded input and applies pixel BCE against
    full-image GT masks (paper: BCE only; ``loss_dice`` optionally adds a Dice
    term: on full images the foreground is a few percent of the pixels, and
    BCE alone favours "empty" masks where objects are small, as in the demo).

    Key names follow SAM's checkpoint: ``pe_layer`` is
    ``prompt_encoder.pe_layer``, ``mask_decoder`` is ``mask_decoder``, and the
    dense prompt's base embedding is ``prompt_encoder.no_mask_embed``.

    ``freeze_decoder=False`` trains SAM's decoder too. BiPA keeps it frozen
    (the point is to prompt SAM's pre-trained decoder); only a model without
    SAM weights would need it trainable (the demo pre-trains its tiny SAM
    instead: see :class:`BoxPromptedSAM`).

    ``mask_decoder`` picks the decoder: ``dict(type='SAMMaskDecoder')`` (SAM)
    or ``dict(type='SAM2MaskDecoder')`` (SAM 2.1, which also reads the
    encoder's high-resolution features); ``decoder_*`` size it.

    ``anchor='box'`` (beyond the paper): each RoI's tokens are SAM's own box
    prompt of the RoI (its two corner tokens: SAM's positional encoding of
    the corners plus the learned corner embeddings, ``point_embeddings[2:4]``
    of SAM's prompt encoder, frozen; SAM 2 adds its padding point,
    ``not_a_point_embed``, as a third token) plus a learned residual,
    ``residual_scale * generator(roi_feats)`` with ``residual_scale``
    starting at zero: at step 0 the mask branch is box-prompted SAM, which
    the frozen decoder was trained to read. ``anchor='none'`` (the paper):
    the tokens are the generator's alone.

    ``mask_upsample`` says how predicted masks become binary at inference:
    ``'logits'`` upsamples the logits, then thresholds their sigmoid;
    ``'probs'`` (the authors' code) applies the sigmoid at low resolution,
    then upsamples and thresholds.
    """

    def __init__(self, *,
                 embed_dim: int = 256,
                 prompt_generator: dict = dict(type='SparsePromptGenerator'),
                 dense_prompt: dict = dict(type='DensePrompt'),
                 decoder_mlp_dim: int = 2048,
                 decoder_depth: int = 2,
                 decoder_num_heads: int = 8,
                 mask_decoder: dict = dict(type='SAMMaskDecoder'),
                 loss_mask: dict = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                        loss_weight=1.0),
                 loss_dice: Optional[dict] = None,
                 chunk_size: int = 32,
                 freeze_decoder: bool = True,
                 anchor: str = 'none',
                 mask_upsample: str = 'logits',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        key = 'model.roi_head.mask_head'
        check_choice(anchor, ANCHORS, f'{key}.anchor', ConfigError)
        check_choice(mask_upsample, MASK_UPSAMPLES, f'{key}.mask_upsample', ConfigError)
        self.embed_dim = embed_dim
        self.anchor = anchor
        self.mask_upsample = mask_upsample
        generator = dict(embed_dim=embed_dim, **prompt_generator)
        decoder_cfg = dict(embed_dim=embed_dim, mlp_dim=decoder_mlp_dim, depth=decoder_depth,
                           num_heads=decoder_num_heads, **mask_decoder)
        self.pads_box_prompt = MODELS.get(decoder_cfg['type']).pads_box_prompt
        if anchor == 'box':
            num_box_tokens = 3 if self.pads_box_prompt else 2
            if generator.setdefault('num_tokens', num_box_tokens) != num_box_tokens:
                raise ConfigError(f"{key}.prompt_generator.num_tokens: anchor='box' adds a "
                                  f"residual to SAM's {num_box_tokens} box tokens, got "
                                  f"{generator['num_tokens']} tokens")
            # SAM's prompt_encoder.point_embeddings: 0/1 points, 2/3 box corners
            self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
            if self.pads_box_prompt:
                self.not_a_point_embed = nn.Embedding(1, embed_dim)
            self.residual_scale = nn.Parameter(torch.zeros(embed_dim))
        self.prompt_generator = MODELS.build(generator)
        self.dense_prompt = MODELS.build(dict(embed_dim=embed_dim, **dense_prompt))
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.mask_decoder = MODELS.build(decoder_cfg)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice) if loss_dice is not None else None
        self.chunk_size = chunk_size
        self.freeze_decoder = freeze_decoder
        self._freeze_sam()

    def _freeze_sam(self) -> None:
        frozen = [self.pe_layer] + ([self.mask_decoder] if self.freeze_decoder else [])
        if self.anchor == 'box':
            frozen.append(self.point_embeddings)
            if self.pads_box_prompt:
                frozen.append(self.not_a_point_embed)
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> 'SAMPromptMaskHead':
        super().train(mode)
        self._freeze_sam()
        return self

    # --- decoding -------------------------------------------------------------

    def image_pe(self, size: Sequence[int]) -> Tensor:
        """SAM's dense positional encoding ``(1, D, h, w)`` of an embedding grid."""
        return self.pe_layer(tuple(size)).unsqueeze(0)

    def box_tokens(self, boxes: Tensor, input_size: Sequence[int]) -> Tensor:
        """SAM's box prompt ``(N, 2, D)`` of boxes ``(N, 4)`` (xyxy, pixels of the
        padded input of size ``input_size``), as SAM's ``PromptEncoder`` embeds
        it: corner positional encodings plus the corner embeddings; for SAM 2
        ``(N, 3, D)``, the padding point's embedding after the corners."""
        corners = (boxes.float() + 0.5).reshape(-1, 2, 2)  # pixel centres
        tokens = self.pe_layer.forward_with_coords(corners, tuple(input_size))
        corner_embed = torch.cat([self.point_embeddings[2].weight,
                                  self.point_embeddings[3].weight])
        tokens = tokens + corner_embed
        if self.pads_box_prompt:
            pad = self.not_a_point_embed.weight.expand(len(tokens), 1, -1)
            tokens = torch.cat([tokens, pad.to(tokens.dtype)], dim=1)
        return tokens

    def prompts(self, roi_feats: Tensor, rois: Tensor, image_embeddings: Tensor, *,
                input_size: Optional[Sequence[int]] = None,
                decoder_features: Sequence[Tensor] = ()) -> MaskPrompts:
        """The decoder's inputs for RoIs ``(N, 5)`` of a batch: sparse tokens from
        their RoI features ``(N, C, S, S)`` (and, with ``anchor='box'``, their
        boxes in the padded input of size ``input_size``), the image
        embeddings, SAM's PE and the decoder's projection of the encoder's
        ``decoder_features``."""
        tokens = self.prompt_generator(roi_feats)
        if self.anchor == 'box':
            if input_size is None:
                raise ValueError("anchor='box' needs the padded input size of the RoIs")
            tokens = (self.box_tokens(rois[:, 1:], input_size).to(tokens.dtype)
                      + self.residual_scale * tokens)
        return MaskPrompts(image_embeddings=image_embeddings,
                           image_pe=self.image_pe(image_embeddings.shape[-2:]),
                           tokens=tokens, img_inds=rois[:, 0].long(),
                           decoder_features=self.mask_decoder.project_features(
                               decoder_features))

    def decode(self, prompts: MaskPrompts, *, dense_prompt: Optional[Tensor] = None,
               with_iou: bool = False):
        """Low-res single-mask logits ``(N, 1, 4h, 4w)`` (and, ``with_iou``, the
        decoder's IoU predictions ``(N,)``).

        ``dense_prompt`` (``(D,)``) defaults to the current rho. SAM's decoder
        math for several images in one call (:meth:`SAMMaskDecoder.decode_single`).
        """
        if len(prompts) == 0:
            h, w = prompts.image_embeddings.shape[-2:]
            masks = prompts.tokens.new_zeros((0, 1, 4 * h, 4 * w))
            return (masks, masks.new_zeros(0)) if with_iou else masks
        if dense_prompt is None:
            dense_prompt = self.dense_prompt()
        masks, iou = self.mask_decoder.decode_single(
            prompts.image_embeddings, prompts.tokens, prompts.img_inds, prompts.image_pe,
            dense_prompt, prompts.decoder_features)
        return (masks, iou) if with_iou else masks

    def forward(self, roi_feats: Tensor, rois: Tensor, image_embeddings: Tensor, *,
                input_size: Optional[Sequence[int]] = None,
                decoder_features: Sequence[Tensor] = ()) -> Tensor:
        """Low-res mask logits ``(N, 1, 4h, 4w)`` for RoIs ``(N, 5)`` of a batch."""
        return self.decode(self.prompts(roi_feats, rois, image_embeddings,
                                        input_size=input_size,
                                        decoder_features=decoder_features))

    @staticmethod
    def upsample(mask_preds: Tensor, size: Sequence[int]) -> Tensor:
        """Low-res logits ``(N, 1, h', w')`` -> float32 logits ``(N, H, W)`` at the
        padded input size, where the loss compares them with the GT masks."""
        return F.interpolate(mask_preds.float(), size=tuple(size), mode='bilinear',
                             align_corners=False).squeeze(1)

    # --- training -------------------------------------------------------------

    @staticmethod
    def get_targets(sampling_results: List, batch_gt_instances: List[InstanceData],
                    device: torch.device) -> Tensor:
        """Full-image binary GT masks ``(N, H, W)`` of the positive RoIs.

        GT masks must already be padded to the batch input shape (the data
        preprocessor's ``pad_mask=True``).
        """
        targets = []
        for res, gt in zip(sampling_results, batch_gt_instances):
            if len(res.pos_assigned_gt_inds):
                # move each GT mask to the device once (as bool), index there
                masks = gt.masks.to_tensor(torch.bool, device)
                targets.append(masks[res.pos_assigned_gt_inds.to(device)])
        if not targets:
            return torch.zeros((0, 1, 1), device=device)
        return torch.cat(targets).float()

    def loss_and_target(self, mask_preds: Tensor, sampling_results: List,
                        batch_gt_instances: List[InstanceData],
                        rcnn_train_cfg: ConfigDict) -> Dict[str, dict]:
        targets = self.get_targets(sampling_results, batch_gt_instances, mask_preds.device)
        if targets.shape[0] == 0:  # keep every trainable parameter in the graph
            loss = mask_preds.sum() * 0
        else:
            logits = self.upsample(mask_preds, targets.shape[-2:])
            loss = self.loss_mask(logits, targets)
        losses = dict(loss_mask=loss)
        if self.loss_dice is not None:
            losses['loss_dice'] = (self.loss_dice(logits.flatten(1), targets.flatten(1))
                                   if targets.shape[0] else mask_preds.sum() * 0)
        return dict(loss_mask=losses, mask_targets=targets)

    # --- inference ------------------------------------------------------------

    def predict_by_feat(self, mask_preds: Sequence[Tensor], results_list: List[InstanceData],
                        batch_img_metas: List[dict], rcnn_test_cfg: ConfigDict,
                        rescale: bool = False, activate_map: bool = False) -> List[InstanceData]:
        """Binary masks at the input (or, with ``rescale``, original) image size."""
        for img_id, (preds, results, meta) in enumerate(
                zip(mask_preds, results_list, batch_img_metas)):
            if results.bboxes.shape[0] == 0:
                results_list[img_id] = empty_instances(
                    [meta], results.bboxes.device, task_type='mask',
                    instance_results=[results],
                    mask_thr_binary=rcnn_test_cfg.mask_thr_binary)[0]
                continue
            results.masks = self._masks_single(preds, meta, rcnn_test_cfg.mask_thr_binary,
                                               rescale, activate_map)
            if rescale:
                scale = [1 / s for s in meta['scale_factor']]
                results.bboxes = scale_boxes(results.bboxes, scale)
        return results_list

    def _masks_single(self, preds: Tensor, meta: dict, threshold: float,
                      rescale: bool, activate_map: bool) -> Tensor:
        pad_h, pad_w = meta.get('batch_input_shape', meta['pad_shape'])[:2]
        img_h, img_w = meta['img_shape'][:2]
        out_h, out_w = meta['ori_shape'][:2] if rescale else (img_h, img_w)
        masks = []
        for chunk in preds.split(self.chunk_size):  # bounds the full-size float maps
            m = chunk.float()
            if self.mask_upsample == 'probs':
                m = m.sigmoid()
            m = F.interpolate(m, size=(pad_h, pad_w), mode='bilinear',
                              align_corners=False)[..., :img_h, :img_w]
            if (out_h, out_w) != (img_h, img_w):
                m = F.interpolate(m, size=(out_h, out_w), mode='bilinear', align_corners=False)
            m = (m if self.mask_upsample == 'probs' else m.sigmoid()).squeeze(1)
            masks.append(m if activate_map else m >= threshold)
        return torch.cat(masks)
