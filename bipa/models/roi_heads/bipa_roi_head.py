from typing import Optional

import torch
import torch.nn.functional as F
from mmdet.models.layers import SinePositionalEncoding
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import InstanceList
from torch import Tensor

from ...utils import ConfigError, check_choice
from ..mask_prompts import MaskPrompts
from ..prompted_features import PromptedFeatures

PE_MASKS = ('padding', 'none')


@MODELS.register_module()
class BiPARoIHead(StandardRoIHead):
    """Mask R-CNN RoI head whose mask branch prompts SAM.

    Differences from :class:`StandardRoIHead`: a sine positional encoding is
    added to every FPN level before RoI pooling (both branches; the levels are
    made contiguous float32 there, see :meth:`add_positional_encoding`), and the
    mask branch is :class:`SAMPromptMaskHead`, which also needs the SAM image
    embeddings carried by :class:`PromptedFeatures`.

    ``pe_mask`` sets the region the sine PE spans: ``'padding'``, each image's
    own extent (its padding masked out), computed at each level's size; or
    ``'none'`` (the authors' code), the whole padded canvas whatever the
    image's size (an all-False mask), computed at the first level's size and
    resized bilinearly to the others.
    """

    def __init__(self, *, positional_encoding: Optional[dict] = dict(num_feats=128,
                                                                     normalize=True),
                 pe_mask: str = 'padding', **kwargs) -> None:
        super().__init__(**kwargs)
        check_choice(pe_mask, PE_MASKS, 'model.roi_head.pe_mask', ConfigError)
        self.pe_mask = pe_mask
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
        if self.pe_mask == 'padding':
            pes = [self.positional_encoding(mask)
                   for mask in self._padding_masks(x, batch_data_samples)]
        else:  # the whole canvas at the first level, resized to the others
            first = self.positional_encoding(
                torch.zeros((1, *x[0].shape[-2:]), dtype=torch.bool, device=x[0].device))
            pes = [F.interpolate(first, size=feat.shape[-2:], mode='bilinear',
                                 align_corners=False) for feat in x]
        return x.replace_levels((feat.float() + pe).contiguous() for feat, pe in zip(x, pes))

    @staticmethod
    def _padding_masks(x: PromptedFeatures, batch_data_samples: SampleList) -> list:
        """Per level, ``(B, h, w)`` masks that are True on each image's padding
        (as DETR-style encoders expect)."""
        metas = [s.metainfo for s in batch_data_samples]
        pad_h, pad_w = metas[0]['batch_input_shape']
        padding = x[0].new_ones((len(metas), pad_h, pad_w))
        for i, meta in enumerate(metas):
            img_h, img_w = meta['img_shape'][:2]
            padding[i, :img_h, :img_w] = 0
        return [F.interpolate(padding[:, None], size=feat.shape[-2:]).squeeze(1).bool()
                for feat in x]

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
        return self.mask_head.prompts(mask_feats, rois, x.image_embeddings,
                                      input_size=x.input_size,
                                      decoder_features=x.decoder_features)

    def _mask_forward(self, x: PromptedFeatures, rois: Tensor = None,
                      pos_inds: Optional[Tensor] = None,
                      bbox_feats: Optional[Tensor] = None) -> dict:
        if rois is None:
            raise ValueError('BiPARoIHead needs its own mask RoI extractor '
                             '(share_roi_extractor is not supported)')
        prompts = self.mask_prompts(x, rois)
        return dict(mask_preds=self.mask_head.decode(prompts), mask_prompts=prompts)
