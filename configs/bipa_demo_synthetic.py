# The demo: the whole BiPA pipeline (adapters, FAI, SAM prompt head, the
# bilevel loop with its Optuna search) with a tiny SAM on the synthetic
# underwater dataset, sized to train and evaluate on a laptop CPU.
# `make demo` generates the data, trains, tests and draws a few predictions.
_base_ = [
    './_base_/models/bipa_vit-tiny.py', './_base_/datasets/synthetic_underwater.py',
    './_base_/schedules/bilevel_paper.py', './_base_/default_runtime.py'
]

model = dict(
    data_preprocessor=dict(pad_size_divisor=128),  # every input is 128x128, as SAM's are 1024
    roi_head=dict(
        bbox_head=dict(num_classes=5),
        # no SAM weights exist for the tiny arch: a random frozen decoder cannot
        # segment, so the demo trains it (BiPA proper keeps SAM's decoder frozen)
        mask_head=dict(freeze_decoder=False)))

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
    T=2, K_a=250, K_b=12, K_c=150, unit='iter',
    holdout=dict(fraction=0.1, seed=0),
    search=dict(batch_size=4, num_workers=0),
    val_interval=100000)

default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=200, max_keep_ckpts=2))
