# The demo: the whole BiPA pipeline (adapters, FAI, SAM prompt head, the
# bilevel loop with its Optuna search) with a tiny SAM on the synthetic
# underwater dataset, sized to train and evaluate on a laptop CPU.
# `make demo` generates the data, trains, tests and draws a few predictions.
_base_ = [
    './_base_/models/bipa_vit-tiny.py', './_base_/datasets/synthetic_underwater.py',
    './_base_/schedules/bilevel_paper.py', './_base_/default_runtime.py'
]

# No pre-trained weights exist for the tiny arch. The ViT stays frozen (random)
# so that the adapters are the only way into it, as in BiPA; the two parts a
# random frozen network cannot stand in for are trained instead: the local
# ResNet (ImageNet-pretrained in BiPA) and SAM's mask decoder.
model = dict(
    data_preprocessor=dict(pad_size_divisor=128),  # every input is 128x128, as SAM's are 1024
    local_backbone=dict(
        frozen_stages=-1, norm_eval=False, norm_cfg=dict(type='BN', requires_grad=True)),
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2)),
        mask_roi_extractor=dict(roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(num_classes=5),
        # a decoder trained from scratch needs a Dice term: on full images the
        # foreground is a few percent of the pixels and BCE alone learns "empty"
        mask_head=dict(
            freeze_decoder=False,
            loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True, naive_dice=True,
                           loss_weight=1.0))),
    # fewer proposals and RoIs than at 1024 px: CPU time goes to RoIAlign
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=600, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=600, max_per_img=300)))

# the demo's data: tools/demo.py generates it (objects at least 0.3 of the side)
data_root = 'data/synthetic_underwater_demo/'
train_dataloader = dict(
    sampler=dict(type='InfiniteSampler', shuffle=True), dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = dict(ann_file=data_root + 'annotations/test.json')

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
    T=2, K_a=500, K_b=12, K_c=250, unit='iter',
    holdout=dict(fraction=0.1, seed=0),
    search=dict(batch_size=4, num_workers=0),
    val_interval=100000)

default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=200, max_keep_ckpts=2))
