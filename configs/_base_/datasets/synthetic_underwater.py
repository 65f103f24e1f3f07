# The synthetic underwater dataset the project generates itself
# (tools/dataset_converters/generate_synthetic.py): 5 classes, 128x128 images
# for CPUs. Models on it set roi_head.bbox_head.num_classes=5.
dataset_type = 'SyntheticUnderwaterDataset'
data_root = 'data/synthetic_underwater/'
image_size = (128, 128)

train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackDetInputs'),
]
# also D_val's pipeline for the prompt search (deterministic, loads GT)
test_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/train.json',
                 data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=True, min_size=4),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/val.json',
                 data_prefix=dict(img='val/'), test_mode=True, pipeline=test_pipeline))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], ann_file='annotations/test.json',
                 data_prefix=dict(img='test/')))
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/val.json',
                     metric=['bbox', 'segm'], format_only=False)
test_evaluator = dict(val_evaluator, ann_file=data_root + 'annotations/test.json')
