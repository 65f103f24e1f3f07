# The demo's setting on SAM 2.1: the tiny SAM 2 of
# configs/_base_/models/sam2_hiera-tiny.py, pre-trained in air
# (configs/sam2_hiera-tiny_inair.py), in place of the tiny SAM; everything
# else (data, schedule, mask branch, search) is the demo's.
_base_ = ['./bipa_demo_synthetic.py', './_base_/models/sam2_hiera-tiny.py']

model = dict(
    sam_checkpoint='checkpoints/sam2_hiera-tiny_inair.pth',
    backbone={{_base_.sam2_tiny_backbone}},
    roi_head=dict(mask_head=dict(mask_decoder={{_base_.sam2_decoder}})))
