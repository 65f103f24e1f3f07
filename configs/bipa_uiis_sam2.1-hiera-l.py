# BiPA on UIIS with SAM 2.1 Hiera-L in place of SAM ViT-H; everything else is
# configs/bipa_uiis.py (1024x1024, batch 2, the paper's bilevel schedule).
_base_ = ['./bipa_uiis.py', './_base_/models/sam2.1-hiera-l.py']

model = dict(
    sam_checkpoint={{_base_.sam2_checkpoint}},
    backbone={{_base_.sam2_backbone}},
    roi_head=dict(mask_head=dict(mask_decoder={{_base_.sam2_decoder}})))
