# The demo: the whole BiPA pipeline (adapters, FAI, SAM prompt head, the
# bilevel loop with its Optuna search) with a tiny SAM pre-trained in air, on
# the synthetic underwater dataset, sized to train and evaluate on a laptop
# CPU. `make demo` measures the SAM's domain gap, trains, tests and draws.
_base_ = [
    './_base_/models/bipa_vit-tiny.py', './_base_/models/mask_branch_box.py',
    './_base_/datasets/synthetic_underwater_demo.py', './_base_/schedules/bilevel_paper.py',
    './_base_/default_runtime.py'
]

# BiPA adapts a SAM pre-trained in air: the tiny SAM of
# configs/sam_vit-tiny_inair.py, pre-trained on synthetic scenes in air and
# shipped in checkpoints/. As in BiPA, its ViT and mask decoder stay frozen:
# adapters, FAI, RPN, RoI heads and the prompt generator learn. The local
# ResNet has no ImageNet weights here, so it is trained too.
# The mask branch starts from box-prompted SAM (docs/training.md, "The mask branch").
model = dict(
    sam_checkpoint='checkpoints/sam_vit-tiny_inair.pth',
    local_backbone=dict(
        frozen_stages=-1, norm_eval=False, norm_cfg=dict(type='BN', requires_grad=True)),
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2)),
        mask_roi_extractor=dict(roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(num_classes=5),
        mask_head={{_base_.mask_branch}}),
    # fewer proposals and RoIs than at 1024 px: CPU time goes to RoIAlign
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=600, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=600, max_per_img=300)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-3),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=50),
]

# T rounds of K_a iterations + K_b trials, then K_c iterations of fine-tuning
train_cfg = dict(
    T=2, K_a=400, K_b=12, K_c=200, unit='iter',
    holdout=dict(fraction=0.1, seed=0),
    search=dict(batch_size=4, num_workers=0),
    finetune=dict(param_scheduler=[]),  # the rate stays at the optimizer's lr
    val_interval=100000)

default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=200, max_keep_ckpts=2))
