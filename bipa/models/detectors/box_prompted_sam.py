"""SAM itself, prompted with ground-truth boxes: pre-training and oracle-box eval."""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import get_box_tensor, scale_boxes
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.structures import InstanceData
from segment_anything.modeling import PromptEncoder
from torch import Tensor

from ..sam_parts import build_image_encoder, build_mask_decoder, resolve_sam_arch


@MODELS.register_module()
class BoxPromptedSAM(BaseDetector):
    """Segment Anything (image encoder, prompt encoder, mask decoder) whose
    prompts are the samples' ground-truth boxes.

    - ``loss``: SAM's box-prompt training. Each GT box, jittered by Gaussian
      noise of ``box_noise`` times its width/height (as SAM simulates an
      imprecise user), prompts one single-mask prediction; BCE + Dice against
      the GT mask at the padded input size, and MSE between the IoU head's
      prediction and the mask's actual IoU. Used to pre-train a SAM for an
      arch without released weights, such as the CPU demo's tiny SAM.
    - ``predict``: the masks of the GT boxes, scored by SAM's IoU prediction
      (oracle-box segmentation: what CocoMetric reports is SAM's mask quality
      given perfect boxes; the test pipeline must load the annotations).

    Submodules are named as in SAM's checkpoints (``image_encoder``,
    ``prompt_encoder``, ``mask_decoder``), so a checkpoint saved by mmengine
    loads as ``BiPA(sam_checkpoint=...)``. Inputs must be padded to the
    encoder's ``img_size`` square, as SAM's own preprocessing does.

    Args:
        arch: SAM arch name or dict (see :func:`resolve_sam_arch`).
        decoder_mlp_dim, decoder_depth, decoder_num_heads: mask decoder size.
        mask_in_chans: channels of the prompt encoder's mask-prompt branch.
        box_noise: std of the box jitter, as a fraction of the box's sides.
        max_prompts: at most this many GT boxes per image per step (random).
        loss_mask, loss_dice, loss_iou: mmdet loss configs (sigmoid BCE,
            Dice, MSE of the IoU prediction).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'vit_b',
                 *,
                 decoder_mlp_dim: int = 2048,
                 decoder_depth: int = 2,
                 decoder_num_heads: int = 8,
                 mask_in_chans: int = 16,
                 box_noise: float = 0.1,
                 max_prompts: int = 32,
                 loss_mask: dict = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                        loss_weight=1.0),
                 loss_dice: dict = dict(type='DiceLoss', use_sigmoid=True, activate=True,
                                        naive_dice=True, loss_weight=1.0),
                 loss_iou: dict = dict(type='MSELoss', loss_weight=1.0),
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.build_sam(arch, mask_in_chans=mask_in_chans, mlp_dim=decoder_mlp_dim,
                       depth=decoder_depth, num_heads=decoder_num_heads)
        if box_noise < 0:
            raise ValueError(f'box_noise must be >= 0, got {box_noise}')
        if max_prompts < 1:
            raise ValueError(f'max_prompts must be >= 1, got {max_prompts}')
        self.box_noise = box_noise
        self.max_prompts = max_prompts
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.loss_iou = MODELS.build(loss_iou)

    def build_sam(self, arch: Union[str, dict], *, mask_in_chans: int, **decoder) -> None:
        """SAM's parts under the names of its checkpoints."""
        arch_cfg = resolve_sam_arch(arch, key='model.arch')
        self.img_size = arch_cfg['img_size']
        grid = self.img_size // arch_cfg['patch_size']
        embed_dim = arch_cfg['out_chans']
        self.image_encoder = build_image_encoder(arch_cfg)
        self.prompt_encoder = PromptEncoder(
            embed_dim=embed_dim, image_embedding_size=(grid, grid),
            input_image_size=(self.img_size, self.img_size), mask_in_chans=mask_in_chans)
        self.mask_decoder = build_mask_decoder(embed_dim=embed_dim, **decoder)

    def check_input(self, batch_inputs: Tensor) -> None:
        if tuple(batch_inputs.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(
                f'SAM takes {self.img_size}x{self.img_size} inputs, got '
                f'{tuple(batch_inputs.shape[-2:])}: resize the longer side to {self.img_size} '
                f'and pad (data_preprocessor pad_size_divisor={self.img_size})')

    def extract_feat(self, batch_inputs: Tensor) -> Tensor:
        """SAM's image embeddings ``(B, D, img_size/16, img_size/16)``."""
        self.check_input(batch_inputs)
        return self.image_encoder(batch_inputs)

    def decode(self, embeddings, boxes: Tensor, img_inds: Tensor) -> Tuple[Tensor, Tensor]:
        """Single-mask logits ``(N, 1, 4h, 4w)`` and IoU predictions ``(N,)``
        for boxes ``(N, 4)`` (xyxy, input pixels) of images ``img_inds``, in
        one decoder call for the whole batch."""
        sparse, _ = self.prompt_encoder(points=None, boxes=boxes, masks=None)
        return self.mask_decoder.decode_single(embeddings, sparse, img_inds,
                                               self.prompt_encoder.get_dense_pe(),
                                               self.prompt_encoder.no_mask_embed.weight[0])

    def jitter(self, boxes: Tensor, img_shape: Tuple[int, int]) -> Tensor:
        """Boxes moved by N(0, box_noise * side) per coordinate, kept in the image."""
        sides = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
        boxes = boxes + torch.randn_like(boxes) * self.box_noise * sides
        h, w = img_shape
        return torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                            boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        embeddings = self.extract_feat(batch_inputs)
        boxes, img_inds, targets = [], [], []
        for i, sample in enumerate(batch_data_samples):
            gt = sample.gt_instances
            if len(gt) == 0:
                continue
            keep = torch.randperm(len(gt), device=batch_inputs.device)[:self.max_prompts]
            boxes.append(self.jitter(get_box_tensor(gt.bboxes)[keep],
                                     sample.metainfo['img_shape']))
            img_inds.append(torch.full_like(keep, i))
            targets.append(gt.masks.to_tensor(torch.float32, batch_inputs.device)[keep])
        if not boxes:  # no instance in the batch: zero loss on the whole graph
            zero = sum(p.sum() * 0 for p in self.parameters() if p.requires_grad)
            return dict(loss_mask=zero, loss_dice=zero.clone(), loss_iou=zero.clone())
        masks, iou = self.decode(embeddings, torch.cat(boxes), torch.cat(img_inds))
        logits = F.interpolate(masks, size=batch_inputs.shape[-2:], mode='bilinear',
                               align_corners=False)[:, 0]
        targets = torch.cat(targets)
        if targets.shape[-2:] != logits.shape[-2:]:
            raise ValueError(f'GT masks are {tuple(targets.shape[-2:])}, inputs '
                             f'{tuple(logits.shape[-2:])}: set pad_mask=True in the '
                             'data_preprocessor')
        with torch.no_grad():
            pred = (logits > 0).flatten(1)
            true = targets.flatten(1) > 0.5
            actual_iou = (pred & true).sum(1) / (pred | true).sum(1).clamp(min=1)
        return dict(loss_mask=self.loss_mask(logits, targets),
                    loss_dice=self.loss_dice(logits.flatten(1), targets.flatten(1)),
                    loss_iou=self.loss_iou(iou, actual_iou.to(iou.dtype)))

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        embeddings = self.extract_feat(batch_inputs)
        ori_boxes, boxes, img_inds = [], [], []
        for i, sample in enumerate(batch_data_samples):
            if 'gt_instances' not in sample or 'bboxes' not in sample.gt_instances:
                raise ValueError('BoxPromptedSAM.predict segments the GT boxes: the test '
                                 'pipeline must load the annotations (LoadAnnotations)')
            # test pipelines load boxes after Resize: they are in original pixels
            ori_boxes.append(get_box_tensor(sample.gt_instances.bboxes).float())
            boxes.append(scale_boxes(ori_boxes[-1], sample.metainfo['scale_factor']))
            img_inds.append(torch.full((len(boxes[-1]),), i, dtype=torch.long,
                                       device=batch_inputs.device))
        masks, iou = self.decode(embeddings, torch.cat(boxes), torch.cat(img_inds))
        masks = F.interpolate(masks, size=batch_inputs.shape[-2:], mode='bilinear',
                              align_corners=False)
        results: List[InstanceData] = []
        sizes = [len(b) for b in boxes]
        for sample, in_boxes, out_boxes, m, score in zip(
                batch_data_samples, boxes, ori_boxes, masks.split(sizes), iou.split(sizes)):
            meta = sample.metainfo
            img_h, img_w = meta['img_shape'][:2]
            m = m[..., :img_h, :img_w]
            if rescale and len(m):
                m = F.interpolate(m, size=meta['ori_shape'][:2], mode='bilinear',
                                  align_corners=False)
            elif rescale:
                m = m.new_zeros((0, 1, *meta['ori_shape'][:2]))
            results.append(InstanceData(bboxes=out_boxes if rescale else in_boxes,
                                        labels=sample.gt_instances.labels,
                                        scores=score.clamp(0, 1), masks=m[:, 0] > 0))
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: Optional[SampleList] = None) -> Tensor:
        return self.extract_feat(batch_inputs)
