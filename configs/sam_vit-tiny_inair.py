# Pre-trains the tiny SAM that configs/_base_/models/bipa_vit-tiny.py expects
# on synthetic scenes in air, with box prompts as SAM itself is trained: the
# stand-in for SAM's SA-1B pre-training (no SAM weights exist for that arch).
# Its checkpoint ships as checkpoints/sam_vit-tiny_inair.pth (docs/install.md:
# how to rebuild it). Validation reports oracle-box segm mAP (SAM's masks for the GT
# boxes).
_base_ = [
    './_base_/models/bipa_vit-tiny.py', './_base_/datasets/synthetic_inair_pretrain.py',
    './_base_/default_runtime.py'
]

model = dict(
    _delete_=True,
    type='BoxPromptedSAM',
    arch={{_base_.model.backbone.arch}},
    decoder_mlp_dim={{_base_.model.roi_head.mask_head.decoder_mlp_dim}},
    decoder_num_heads={{_base_.model.roi_head.mask_head.decoder_num_heads}},
    box_noise=0.1,
    data_preprocessor={{_base_.model.data_preprocessor}})

val_evaluator = dict(metric='segm')  # oracle boxes: only the masks are scored
test_evaluator = dict(metric='segm')

max_iters = 10000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters),
]
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
