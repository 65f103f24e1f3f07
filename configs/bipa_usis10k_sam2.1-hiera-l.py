# BiPA on USIS10K (multi-class) with SAM 2.1 Hiera-L in place of SAM ViT-H;
# everything else is configs/bipa_usis10k.py (space adapter, official val
# split as D_val).
_base_ = ['./bipa_usis10k.py', './_base_/models/sam2.1-hiera-l.py']

model = dict(
    sam_checkpoint={{_base_.sam2_checkpoint}},
    backbone={{_base_.sam2_backbone}},
    roi_head=dict(mask_head=dict(mask_decoder={{_base_.sam2_decoder}})))
