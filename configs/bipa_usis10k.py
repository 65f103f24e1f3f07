# BiPA on USIS10K, multi-class (7 classes). The authors add the space adapter
# for USIS10K. D_val is the official val split (the test split is reported).
_base_ = [
    './_base_/models/bipa_vit-h.py', './_base_/datasets/usis10k.py',
    './_base_/schedules/bilevel_paper.py', './_base_/default_runtime.py'
]

model = dict(backbone=dict(use_space_adapter=True))

train_cfg = dict(holdout=None, val_split='val_dataloader')
auto_scale_lr = dict(enable=False, base_batch_size=2)
