import inspect
from typing import Dict, List, Optional, Sequence, Set, Tuple

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi, get_box_tensor, scale_boxes
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData
from torch import Tensor

from ...utils import ConfigError
from ..layers.dense_prompt import DensePrompt
from ..mask_prompts import MaskPrompts
from ..prompted_features import PromptedFeatures
from ..sam_checkpoint import load_sam_checkpoint, sam_targets


@MODELS.register_module()
class BiPA(TwoStageDetector):
    """BiPA: a Mask R-CNN-shaped detector whose mask branch is SAM.

    ``backbone`` (:class:`SAMViTAdapter`, or :class:`SAM2HieraAdapter` for
    SAM 2.1) gives SAM's image embedding and four levels of features
    (:class:`EncoderOutput`); ``local_backbone`` (a frozen ResNet-50) gives C2..C5 of the
    same normalised image; ``neck`` (:class:`FAINeck`) fuses them into five FPN
    levels for the RPN and the RoI head (:class:`BiPARoIHead`), whose mask
    head prompts SAM's decoder with sparse tokens per box and the dense
    prompt rho.

    Args:
        sam_checkpoint: path of an official SAM checkpoint loaded by
            :meth:`init_weights` (encoder, decoder, PE, ``no_mask_embed``).
        sam_checkpoint_strict: refuse a checkpoint with missing, unexpected or
            mis-shaped keys (default); ``False`` loads what matches and logs
            the rest.
    """

    def __init__(self,
                 backbone: ConfigType,
                 local_backbone: ConfigType,
                 neck: ConfigType,
                 rpn_head: ConfigType,
                 roi_head: ConfigType,
                 train_cfg: ConfigType,
                 test_cfg: ConfigType,
                 data_preprocessor: OptConfigType = None,
                 sam_checkpoint: Optional[str] = None,
                 sam_checkpoint_strict: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(backbone=backbone, neck=self.neck_levels(backbone, neck),
                         rpn_head=rpn_head, roi_head=roi_head,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.local_backbone = MODELS.build(local_backbone)
        encoder = getattr(self.backbone, 'sam_version', 1)
        decoder = self.roi_head.mask_head.mask_decoder.sam_version
        if encoder != decoder:
            raise ConfigError(
                f'model.roi_head.mask_head.mask_decoder is a SAM {decoder} decoder but '
                f'model.backbone ({type(self.backbone).__name__}) a SAM {encoder} encoder: '
                f"use type='{'SAM2MaskDecoder' if encoder == 2 else 'SAMMaskDecoder'}'")
        self.sam_checkpoint = sam_checkpoint
        self.sam_checkpoint_strict = sam_checkpoint_strict

    @staticmethod
    def neck_levels(backbone: ConfigType, neck: ConfigType) -> ConfigType:
        """The neck's config with the encoder's ``vit_channels`` and
        ``vit_stride`` per level, as the backbone declares them
        (``level_spec``), where the config leaves them out."""
        spec = getattr(MODELS.get(backbone['type']), 'level_spec', None)
        takes = inspect.signature(MODELS.get(neck['type'])).parameters
        if spec is None or 'vit_channels' not in takes or (
                'vit_channels' in neck and 'vit_stride' in neck):
            return neck
        channels, strides = spec(**{k: v for k, v in backbone.items() if k != 'type'})
        return {**neck, 'vit_channels': neck.get('vit_channels', channels),
                'vit_stride': neck.get('vit_stride', strides)}

    @property
    def dense_prompt(self) -> DensePrompt:
        """The dense prompt rho (get/set its group weights for the search)."""
        return self.roi_head.mask_head.dense_prompt

    def init_weights(self) -> None:
        super().init_weights()
        if self.sam_checkpoint is not None:
            load_sam_checkpoint(self, self.sam_checkpoint, strict=self.sam_checkpoint_strict)

    def frozen_weight_sources(self) -> Dict[str, Tuple[str, Set[str]]]:
        """``{config key: (file, names)}``: the files that supply weights, and
        the names of those weights (lean checkpoints leave out the frozen ones:
        :mod:`bipa.models.frozen_weights`)."""
        sources = {}
        if self.sam_checkpoint is not None:
            sources['model.sam_checkpoint'] = (self.sam_checkpoint, sam_targets(self))
        init_cfg = self.local_backbone.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            names = {f'local_backbone.{n}' for n in self.local_backbone.state_dict()}
            sources['model.local_backbone.init_cfg.checkpoint'] = (init_cfg['checkpoint'], names)
        return sources

    def load_frozen_weights(self) -> None:
        """Load the weights :meth:`frozen_weight_sources` names from their files
        (what :meth:`init_weights` loads, without initialising the rest)."""
        self.local_backbone.init_weights()
        if self.sam_checkpoint is not None:
            load_sam_checkpoint(self, self.sam_checkpoint, strict=self.sam_checkpoint_strict)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        # kept for the message of a non-finite loss (see parse_losses)
        self._loss_images = [s.metainfo.get('img_path', s.metainfo.get('img_id'))
                             for s in batch_data_samples]
        return super().loss(batch_inputs, batch_data_samples)

    def parse_losses(self, losses: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """mmengine's reduction, but a non-finite loss stops training with the
        iteration, the offending terms and the batch's images, before the
        optimizer step can spread NaN into the weights."""
        loss, log_vars = super().parse_losses(losses)
        if not torch.isfinite(loss):
            bad: List[str] = [k for k, v in log_vars.items() if k != 'loss' and 'loss' in k
                              and not torch.isfinite(torch.as_tensor(v))]
            iteration = MessageHub.get_current_instance().get_info('iter')
            raise FloatingPointError(
                f'non-finite loss at iteration {iteration}: '
                + ', '.join(f'{k}={float(log_vars[k])}' for k in bad)
                + f'; images: {getattr(self, "_loss_images", "?")}. Lower the learning rate, '
                'check these images and their annotations, or train in bf16 rather than fp16.')
        return loss, log_vars

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Detections with masks; with ``test_cfg.oracle_boxes=True`` the
        detections are the ground-truth boxes and labels, scored by SAM's IoU
        prediction for their masks, so that COCO's segm mAP measures the mask
        branch alone exactly as :class:`BoxPromptedSAM` measures SAM. The test
        pipeline must load the annotations (mmdet's test pipelines load them
        after ``Resize``: the boxes are in original pixels)."""
        if not self.test_cfg.get('oracle_boxes', False):
            return super().predict(batch_inputs, batch_data_samples, rescale=rescale)
        detections = []
        for sample in batch_data_samples:
            gt = sample.get('gt_instances')
            if gt is None or 'bboxes' not in gt:
                raise ValueError('model.test_cfg.oracle_boxes=True needs the ground truth: the '
                                 'test pipeline must load the annotations (LoadAnnotations)')
            boxes = scale_boxes(get_box_tensor(gt.bboxes).float(), sample.metainfo['scale_factor'])
            detections.append(InstanceData(bboxes=boxes, labels=gt.labels))
        prompts = self.mask_prompts(batch_inputs, batch_data_samples,
                                    [d.bboxes for d in detections])
        detections = self.box_detections(prompts, detections,
                                         [s.metainfo for s in batch_data_samples],
                                         rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, detections)

    # --- the mask branch, shared by training, inference and the prompt search --

    def mask_prompts(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                     boxes: Sequence[Tensor]) -> MaskPrompts:
        """SAM decoder inputs for ``boxes`` (per image ``(n_i, 4)`` xyxy in input
        pixels): the same features, positional encoding, RoI extractor and
        prompt generator as the RoI head's mask branch."""
        x = self.roi_head.add_positional_encoding(self.extract_feat(batch_inputs),
                                                  batch_data_samples)
        return self.roi_head.mask_prompts(x, bbox2roi(list(boxes)))

    def mask_logits(self, prompts: MaskPrompts, size: Sequence[int], *,
                    group_weights: Optional[Sequence[float]] = None) -> Tensor:
        """Float32 mask logits ``(N, H, W)`` at the padded input size ``size``,
        as the mask loss sees them, under the dense prompt that
        ``group_weights`` give (default: the current rho)."""
        head = self.roi_head.mask_head
        rho = None if group_weights is None else head.dense_prompt.prompt_for(group_weights)
        return head.upsample(head.decode(prompts, dense_prompt=rho), size)

    def box_detections(self, prompts: MaskPrompts, detections: InstanceList,
                       batch_img_metas: List[dict], *, rescale: bool = True,
                       group_weights: Optional[Sequence[float]] = None) -> InstanceList:
        """Given boxes as detections: per image an ``InstanceData`` with
        ``bboxes`` (input pixels) and ``labels``, and ``prompts`` decoding them
        in that order, add ``scores`` (SAM's IoU prediction of each mask) and
        binary ``masks`` at the input (``rescale``: original) size, under the
        dense prompt of ``group_weights`` (default: the current rho). The
        oracle-box test and the search's ``segm_map`` f both score these."""
        head = self.roi_head.mask_head
        rho = None if group_weights is None else head.dense_prompt.prompt_for(group_weights)
        masks, iou = head.decode(prompts, dense_prompt=rho, with_iou=True)
        sizes = [len(d) for d in detections]
        for d, score in zip(detections, iou.split(sizes)):
            d.scores = score.float().clamp(0, 1)
        return head.predict_by_feat(masks.split(sizes), detections, batch_img_metas,
                                    self.test_cfg.rcnn, rescale=rescale)

    def extract_feat(self, batch_inputs: Tensor) -> PromptedFeatures:
        encoded = self.backbone(batch_inputs)
        local_feats = self.local_backbone(batch_inputs)
        levels = self.neck(encoded.levels, local_feats)
        return PromptedFeatures(levels, image_embeddings=encoded.image_embedding,
                                input_size=batch_inputs.shape[-2:],
                                decoder_features=encoded.decoder_features)
