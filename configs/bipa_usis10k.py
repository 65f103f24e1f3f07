# BiPA on USIS10K, multi-class (7 classes). The authors add the space adapter
# for USIS10K.
_base_ = [
    './_base_/models/bipa_vit-h.py', './_base_/datasets/usis10k.py',
    './_base_/schedules/bilevel_paper.py', './_base_/default_runtime.py'
]

model = dict(
    data_preprocessor=dict(pad_size_divisor=1024),
    backbone=dict(use_space_adapter=True),
    roi_head=dict(bbox_head=dict(num_classes=7)))

auto_scale_lr = dict(enable=False, base_batch_size=2)
