# BiPA on UIIS (the paper's settings) with the mask branch of the demo: SAM's
# box prompt + a zero-initialised learned residual per RoI, and Dice in the
# mask loss. Beyond the paper; see docs/training.md, "The mask branch".
_base_ = ['./bipa_uiis.py', './_base_/models/mask_branch_box.py']

model = dict(roi_head=dict(mask_head={{_base_.mask_branch}}))
