# BiPA on USIS10K, class-agnostic: the multi-class config with the foreground
# annotations (one class, 'foreground') of the same images.
_base_ = ['./bipa_usis10k.py']

model = dict(roi_head=dict(bbox_head=dict(num_classes=1)))

dataset_type = 'USIS10KForegroundDataset'
data_root = 'data/USIS10K/'  # the images and both annotation sets
ann_dir = 'foreground_annotations/foreground_'
train_dataloader = dict(dataset=dict(
    type=dataset_type, ann_file=ann_dir + 'train_annotations.json'))
val_dataloader = dict(dataset=dict(type=dataset_type, ann_file=ann_dir + 'val_annotations.json'))
test_dataloader = dict(dataset=dict(type=dataset_type,
                                    ann_file=ann_dir + 'test_annotations.json'))
val_evaluator = dict(ann_file=data_root + ann_dir + 'val_annotations.json')
test_evaluator = dict(ann_file=data_root + ann_dir + 'test_annotations.json')
