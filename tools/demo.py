"""The README's main job: BiPA end to end on the synthetic underwater dataset.

1. generates ``data/synthetic_underwater_demo`` if it is missing;
2. pre-trains the tiny SAM (``configs/sam_vit-tiny_synthetic.py``: box
   prompts, as SAM is trained) if its checkpoint is missing: no SAM weights
   exist for the tiny arch, and BiPA adapts a pre-trained SAM;
3. evaluates the BiPA model before training on the test split (the
   baseline: SAM loaded, everything else initialised as training starts);
4. trains ``configs/bipa_demo_synthetic.py`` (bilevel loop: adaptation rounds
   with the Optuna prompt search, then fine-tuning);
5. evaluates the trained model on the test split (COCO bbox/segm mAP);
6. draws a few test predictions.

    python tools/demo.py [--work-dir work_dirs/bipa_demo_synthetic]
"""
import argparse
import copy
import glob
import importlib.util
import json
import os
import os.path as osp
import time

import torch

from mmengine.config import Config
from mmengine.runner import Runner

import bipa  # noqa: F401
from bipa.datasets import generate_synthetic_dataset

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'bipa_demo_synthetic.py')
SAM_CONFIG = osp.join(ROOT, 'configs', 'sam_vit-tiny_synthetic.py')
DATA = osp.join(ROOT, 'data', 'synthetic_underwater_demo')
SPLITS = dict(train=400, val=50, test=100)
IMAGE_SIZE = (128, 128)
MIN_OBJECT_SIZE = 0.3  # objects of at least 38 px: a from-scratch CPU model can learn them


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_data(data_root: str) -> None:
    ann_files = [osp.join(data_root, 'annotations', f'{s}.json') for s in SPLITS]
    if all(osp.isfile(f) for f in ann_files):
        print(f'[demo] using the synthetic dataset in {data_root}')
        return
    print(f'[demo] generating the synthetic underwater dataset in {data_root}')
    generate_synthetic_dataset(data_root, splits=SPLITS, image_size=IMAGE_SIZE, seed=0,
                               min_object_size=MIN_OBJECT_SIZE)


def use_demo_data(cfg: Config, data_root: str) -> None:
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = data_root + '/'
    for split in ('val', 'test'):
        cfg[f'{split}_evaluator'].ann_file = osp.join(data_root, 'annotations', f'{split}.json')


def ensure_sam(work_dir: str, checkpoint: str) -> dict:
    """Pre-trains the tiny SAM into ``checkpoint`` unless it exists; returns
    its oracle-box validation metrics (empty when it was already there)."""
    if osp.isfile(checkpoint):
        print(f'[demo] using the pre-trained tiny SAM {checkpoint}')
        return {}
    print(f'[demo] pre-training the tiny SAM (box prompts) into {work_dir}')
    cfg = Config.fromfile(SAM_CONFIG)
    cfg.work_dir = work_dir
    use_demo_data(cfg, DATA)
    cfg.train_cfg.val_interval = cfg.train_cfg.max_iters + 1  # validated once, below
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()  # SAM's masks for the GT boxes of the val split
    os.makedirs(osp.dirname(checkpoint), exist_ok=True)
    torch.save(runner.model.state_dict(), checkpoint)  # SAM's own layout: a plain state dict
    return metrics


def test(cfg: Config, checkpoint: str = None) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    runner = Runner.from_cfg(cfg)
    if checkpoint is None:  # the untrained model, initialised as training starts
        runner.model.init_weights()
    return runner.test()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'bipa_demo_synthetic'))
    args = parser.parse_args()
    # one thread: the tiny model's ops are too small to gain from two, and
    # measured faster on this 2-core machine (0.33 vs 0.5 s per step)
    torch.set_num_threads(1)
    start = time.time()
    ensure_data(DATA)
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = args.work_dir
    use_demo_data(cfg, DATA)
    sam_dir = osp.join(osp.dirname(args.work_dir), 'sam_vit-tiny_synthetic')
    cfg.model.sam_checkpoint = osp.join(sam_dir, osp.basename(cfg.model.sam_checkpoint))
    sam_metrics = ensure_sam(sam_dir, cfg.model.sam_checkpoint)

    print('[demo] evaluating the model before BiPA training on the test split')
    before = test(cfg)
    print('[demo] training (bilevel loop)')
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    checkpoint = osp.join(args.work_dir, f'iter_{runner.iter}.pth')
    if not osp.isfile(checkpoint):
        runner.save_checkpoint(args.work_dir, osp.basename(checkpoint), by_epoch=False,
                               meta=dict(iter=runner.iter))
    del runner
    print('[demo] evaluating the trained model on the test split')
    after = test(cfg, checkpoint)

    images = sorted(glob.glob(osp.join(DATA, 'test', '*.jpg')))[:4]
    vis_dir = osp.join(args.work_dir, 'demo_predictions')
    load_tool('infer').main([CONFIG, checkpoint, *images, '--out-dir', vis_dir,
                             '--score-thr', '0.3'])

    minutes = (time.time() - start) / 60
    summary = {
        'minutes': round(minutes, 2),
        'sam_oracle_box_val': {k: v for k, v in sam_metrics.items() if k.startswith('coco/')},
        'before': {k: before[k] for k in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/segm_mAP_50')},
        'after': {k: after[k] for k in sorted(after) if k.startswith('coco/')},
        'checkpoint': checkpoint, 'predictions': vis_dir,
    }
    with open(osp.join(args.work_dir, 'demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    if sam_metrics:
        print(f'\n[demo] tiny SAM, oracle GT boxes, val split: segm mAP '
              f'{sam_metrics["coco/segm_mAP"]:.3f}, AP50 {sam_metrics["coco/segm_mAP_50"]:.3f}')
    print('\n[demo] COCO results of BiPA on the synthetic test split (100 images):')
    print(f'  {"":15s} {"bbox mAP":>9s} {"segm mAP":>9s} {"segm AP50":>10s}')
    for name, m in (('before training', before), ('trained', after)):
        print(f'  {name:15s} {m["coco/bbox_mAP"]:9.3f} {m["coco/segm_mAP"]:9.3f} '
              f'{m["coco/segm_mAP_50"]:10.3f}')
    print(f'[demo] done in {minutes:.1f} min; checkpoint {checkpoint}; '
          f'predictions drawn in {vis_dir}')


if __name__ == '__main__':
    main()
