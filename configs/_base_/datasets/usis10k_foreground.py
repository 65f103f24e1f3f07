# USIS10K, class-agnostic (one class, 'foreground').
_base_ = ['./usis10k.py']

dataset_type = 'USIS10KForegroundDataset'
ann_dir = 'foreground_annotations/foreground_'
data_root = 'data/USIS10K/'

train_dataloader = dict(dataset=dict(
    type=dataset_type, ann_file=ann_dir + 'train_annotations.json'))
val_dataloader = dict(dataset=dict(type=dataset_type, ann_file=ann_dir + 'val_annotations.json'))
test_dataloader = dict(dataset=dict(type=dataset_type,
                                    ann_file=ann_dir + 'test_annotations.json'))
val_evaluator = dict(ann_file=data_root + ann_dir + 'val_annotations.json')
test_evaluator = dict(ann_file=data_root + ann_dir + 'test_annotations.json')
