# The demo's copy of the synthetic dataset (tools/demo.py generates it: 400 /
# 50 / 100 images of 128x128, objects at least 0.3 of the shorter side), with
# an infinite sampler for iteration-based schedules.
_base_ = ['./synthetic_underwater.py']

data_root = 'data/synthetic_underwater_demo/'
train_dataloader = dict(
    sampler=dict(type='InfiniteSampler', shuffle=True), dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = dict(ann_file=data_root + 'annotations/test.json')
