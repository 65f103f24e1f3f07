# The tiny SAM's pre-training data, its stand-in for SA-1B: synthetic scenes
# in air (seed 1, so none is a scene of the benchmark, which is seed 0), 4000
# training and 100 validation images of 128x128, objects at least 0.2 of the
# shorter side; `python tools/demo.py --rebuild-sam` generates it with
#   python tools/dataset_converters/generate_synthetic.py --medium in_air \
#       --out data/synthetic_inair_pretrain --train 4000 --val 100 --test 0 \
#       --size 128 128 --seed 1 --min-object-size 0.2
# The test split is the underwater benchmark's (the demo's): the SAM's
# oracle-box quality under water; tools/analysis/domain_gap.py also scores the
# same scenes in air.
_base_ = ['./synthetic_underwater_demo.py']

data_root = 'data/synthetic_inair_pretrain/'
train_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
