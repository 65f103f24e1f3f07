from typing import Optional

from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from ..layers.dense_prompt import DensePrompt
from ..prompted_features import PromptedFeatures
from ..sam_checkpoint import load_sam_checkpoint


@MODELS.register_module()
class BiPA(TwoStageDetector):
    """BiPA: a Mask R-CNN-shaped detector whose mask branch is SAM.

    ``backbone`` (:class:`SAMViTAdapter`) gives SAM's image embedding and four
    hidden states; ``local_backbone`` (a frozen ResNet-50) gives C2..C5 of the
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
        super().__init__(backbone=backbone, neck=neck, rpn_head=rpn_head, roi_head=roi_head,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.local_backbone = MODELS.build(local_backbone)
        self.sam_checkpoint = sam_checkpoint
        self.sam_checkpoint_strict = sam_checkpoint_strict

    @property
    def dense_prompt(self) -> DensePrompt:
        """The dense prompt rho (get/set its group weights for the search)."""
        return self.roi_head.mask_head.dense_prompt

    def init_weights(self) -> None:
        super().init_weights()
        if self.sam_checkpoint is not None:
            load_sam_checkpoint(self, self.sam_checkpoint, strict=self.sam_checkpoint_strict)

    def extract_feat(self, batch_inputs: Tensor) -> PromptedFeatures:
        image_embeddings, hidden_states = self.backbone(batch_inputs)
        local_feats = self.local_backbone(batch_inputs)
        levels = self.neck(hidden_states, local_feats)
        return PromptedFeatures(levels, image_embeddings=image_embeddings)
