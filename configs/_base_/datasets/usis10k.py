# USIS10K, multi-class: 7,442 train images, val and test splits; reported on test.
_base_ = ['./uiis.py']

dataset_type = 'USIS10KDataset'
data_root = 'data/USIS10K/'
ann_dir = 'multi_class_annotations/multi_class_'

train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file=ann_dir + 'train_annotations.json',
    data_prefix=dict(img='train/')))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file=ann_dir + 'val_annotations.json',
    data_prefix=dict(img='val/')))
test_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file=ann_dir + 'test_annotations.json',
    data_prefix=dict(img='test/')))
val_evaluator = dict(ann_file=data_root + ann_dir + 'val_annotations.json')
test_evaluator = dict(ann_file=data_root + ann_dir + 'test_annotations.json')
