# The mask branch that starts from box-prompted SAM (docs/training.md, "The
# mask branch"; beyond the paper): each RoI's tokens are SAM's box prompt plus a
# zero-initialised residual from the prompt generator, and Dice joins the
# mask BCE in training (the search's f stays the BCE). A leaf config applies
# it with model = dict(roi_head=dict(mask_head={{_base_.mask_branch}})).
mask_branch = dict(
    anchor='box',
    loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True, naive_dice=True, eps=1.0,
                   loss_weight=1.0))
