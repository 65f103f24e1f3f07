from typing import Optional

import torch.nn.functional as F
from mmdet.models.layers import SinePositionalEncoding
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import InstanceList
from torch import Tensor

from ..mask_prompts import MaskPrompts
from ..prompted_features import PromptedFeatures


@MODELS.register_module()
class BiPARoIHead(StandardRoIHead):
    """Mask R-CNN RoI head whose mask branch prompts SAM.

    Differences from :class:`StandardRoIHead`: a sine positional encoding is
    added to every FPN level before RoI pooling (both branches; the levels are
    made contiguous float32 there, see :meth:`add_positional_encoding`), and the
    mask branch is :class:`SAMPromptMaskHead`, which also needs the SAM image
    embeddings carried by :class:`PromptedFeatures`.
    """

    def __init__(self, *, positional_encoding: Optional[dict] = dict(num_feats=128,
                                                                     normalize=True),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.positional_encoding = (SinePositionalEncoding(**positional_encoding)
                                    if positional_encoding is not None else None)

    def add_positional_encoding(self, x: PromptedFeatures,
                                batch_data_samples: SampleList) -> PromptedFeatures:
        """The levels RoIAlign pools from: ``level + PE``, contiguous float32.

        mmcv's RoIAlign has no bfloat16 kernel (bf16 autocast), and its CPU and
        CUDA kernels index the input as a contiguous NCHW array without
        checking: a channels-last level (e.g. the output of a permuted layer
        norm) would be pooled from the wrong memory, silently.
        """
        if self.positional_encoding is None:
            return x.replace_levels(feat.float().contiguous() for feat in x)
        metas = [s.metainfo for s in batch_data_samples]
        pad_h, pad_w = metas[0]['batch_input_shape']
        # 1 marks padding, as DETR-style encoders expect
        padding = x[0].new_ones((len(metas), pad_h, pad_w))
        for i, meta in enumerate(metas):
            img_h, img_w = meta['img_shape'][:2]
            padding[i, :img_h, :img_w] = 0
        levels = []
        for feat in x:
            mask = F.interpolate(padding[:, None], size=feat.shape[-2:]).squeeze(1).bool()
            levels.append((feat.float() + self.positional_encoding(mask)).contiguous())
        return x.replace_levels(levels)

    def loss(self, x: PromptedFeatures, rpn_results_list: InstanceList,
             batch_data_samples: SampleList) -> dict:
        return super().loss(self.add_positional_encoding(x, batch_data_samples),
                            rpn_results_list, batch_data_samples)

    def predict(self, x: PromptedFeatures, rpn_results_list: InstanceList,
                batch_data_samples: SampleList, rescale: bool = False) -> InstanceList:
        return super().predict(self.add_positional_encoding(x, batch_data_samples),
                               rpn_results_list, batch_data_samples, rescale=rescale)

    def forward(self, x: PromptedFeatures, rpn_results_list: InstanceList,
                batch_data_samples: SampleList = None) -> tuple:
        return super().forward(self.add_positional_encoding(x, batch_data_samples),
                               rpn_results_list, batch_data_samples)

    def mask_prompts(self, x: PromptedFeatures, rois: Tensor) -> MaskPrompts:
        """SAM decoder inputs for RoIs ``(N, 5)``, from levels that went through
        :meth:`add_positional_encoding`. The one mask-branch path: training,
        inference and the prompt search (:meth:`BiPA.mask_prompts`) use it."""
        mask_feats = self.mask_roi_extractor(x[:self.mask_roi_extractor.num_inputs], rois)
        return self.mask_head.prompts(mask_feats, rois, x.image_embeddings)

    def _mask_forward(self, x: PromptedFeatures, rois: Tensor = None,
                      pos_inds: Optional[Tensor] = None,
                      bbox_feats: Optional[Tensor] = None) -> dict:
        if rois is None:
            raise ValueError('BiPARoIHead needs its own mask RoI extractor '
                             '(share_roi_extractor is not supported)')
        prompts = self.mask_prompts(x, rois)
        return dict(mask_preds=self.mask_head.decode(prompts), mask_prompts=prompts)
