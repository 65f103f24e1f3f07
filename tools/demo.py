"""The README's main job: a SAM pre-trained in air, its gap under water, and BiPA bridging it.

1. generates the underwater benchmark ``data/synthetic_underwater_demo``
   (seed 0: 400 / 50 / 100 images of 128x128) and the same test scenes in air
   (``data/synthetic_inair_demo``) when they are missing;
2. takes the tiny SAM pre-trained in air, ``checkpoints/sam_vit-tiny_inair.pth``
   (shipped; ``--rebuild-sam`` generates its in-air data and pre-trains it
   again with ``configs/sam_vit-tiny_inair.py``);
3. measures the domain gap: SAM's masks for the ground-truth boxes of the
   same test scenes, in air and under water (segm mAP);
4. evaluates BiPA before training (SAM loaded, everything else initialised);
5. trains ``configs/bipa_demo_synthetic.py`` on the underwater images (bilevel
   loop: adaptation rounds with the Optuna prompt search, then fine-tuning);
6. reports each search round: f at the identity prompt, the best f and rho;
7. evaluates the trained checkpoint on the test split (what ``tools/test.py``
   prints for it), and its masks alone: the true boxes as detections
   (``model.test_cfg.oracle_boxes``), under water and in air, beside SAM's;
8. draws test images: in air, the ground truth and BiPA's prediction under
   water, enlarged 4 times.

It prints a line per step and per tenth of training, then the results (under
40 lines); ``--verbose`` adds what the training runner logs below WARNING (its
log file in the work dir keeps it anyway), pycocotools' evaluation prints and
mmengine's known-harmless warnings.

    python tools/demo.py [--work-dir work_dirs/bipa_demo_synthetic] [--rebuild-sam] [--sam2] \
        [--verbose]

``--sam2`` tells the same story on the tiny SAM 2.1 (``configs/bipa_demo_synthetic_sam2.py``).
"""
import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import os.path as osp
import sys
import time
import warnings
from typing import Optional

import cv2
import numpy as np
import torch
from mmengine.hooks import Hook

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'bipa_demo_synthetic.py')
SAM_CONFIG = osp.join(ROOT, 'configs', 'sam_vit-tiny_inair.py')
SAM_CHECKPOINT = osp.join(ROOT, 'checkpoints', 'sam_vit-tiny_inair.pth')
# --sam2: the same story on the tiny SAM 2.1
SAM2_FILES = dict(config=osp.join(ROOT, 'configs', 'bipa_demo_synthetic_sam2.py'),
                  sam_config=osp.join(ROOT, 'configs', 'sam2_hiera-tiny_inair.py'),
                  sam_checkpoint=osp.join(ROOT, 'checkpoints', 'sam2_hiera-tiny_inair.pth'))
DATA = osp.join(ROOT, 'data', 'synthetic_underwater_demo')
IN_AIR = osp.join(ROOT, 'data', 'synthetic_inair_demo')
PRETRAIN = osp.join(ROOT, 'data', 'synthetic_inair_pretrain')
# objects of at least 38 px: a from-scratch CPU model can learn them
BENCHMARK = dict(image_size=(128, 128), seed=0, min_object_size=0.3)
SPLITS = dict(train=400, val=50, test=100)  # in air: the same test scenes only
PRETRAIN_DATA = dict(splits=dict(train=4000, val=100), image_size=(128, 128), seed=1,
                     min_object_size=0.2, medium='in_air')
METRICS = ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/segm_mAP_50')
GAP_KEYS = ('coco/segm_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP_75')
# Known-harmless, hidden unless --verbose. mmengine's ManagerMixin warns when a
# runner's logger and scope take the experiment name of one started in the same
# second; the runners here run one after another.
HARMLESS_WARNING = (r'<class \S+> instance named of \S+ has been created, '
                    r'the method `get_instance` should not accept any other arguments')
# mmengine's CheckpointHook.before_train builds a FileClient it never uses
HARMLESS_LOGS = ('"FileClient" will be deprecated', '"HardDiskBackend" is the alias')


class Progress(Hook):
    """A line per tenth of training on the stream given: iteration, phase,
    loss and minutes; whole lines, no carriage returns, so a CI log reads as a
    terminal does."""

    priority = 'VERY_LOW'  # after a round's prompt search

    def __init__(self, stream, parts: int = 10) -> None:
        self.stream, self.parts, self.start = stream, parts, time.time()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        done, total = batch_idx + 1, runner.max_iters
        if done * self.parts // total == batch_idx * self.parts // total:
            return
        phase = getattr(runner.train_loop, 'phase', 'training')  # BilevelLoop's
        loss = (outputs or {}).get('loss')
        loss = '' if loss is None else f', loss {float(torch.as_tensor(loss).detach()):.3f}'
        print(f'[demo]   {100 * done // total:3d}%  iteration {done}/{total} ({phase}){loss}, '
              f'{(time.time() - self.start) / 60:.1f} min', file=self.stream, flush=True)


def quiet_stdout(verbose: bool):
    """Unless ``verbose``, drop what is printed on stdout (pycocotools' progress
    and tables); loggers built before keep their stream."""
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def train_runner(config: str, verbose: bool, **overrides):
    """``build_runner`` with :class:`Progress`; unless ``verbose``, logging
    WARNING and up on the console, everything in the work dir's log file, and
    without :data:`HARMLESS_LOGS`."""
    from bipa.apis import build_runner
    if not verbose:
        overrides['cfg_options'] = dict(overrides.get('cfg_options') or {}, log_level='WARNING')
    runner = build_runner(config, **overrides)
    runner.register_hook(Progress(sys.stdout))
    if not verbose:
        for handler in runner.logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.INFO)
        runner.logger.addFilter(lambda record: not record.getMessage().startswith(HARMLESS_LOGS))
    return runner


def ensure_data(root: str, **spec) -> None:
    from bipa.datasets.synthetic import generate_synthetic_dataset
    if all(osp.isfile(osp.join(root, 'annotations', f'{s}.json')) for s in spec['splits']):
        print(f'[demo] using {root}')
        return
    print(f'[demo] generating {root} ({spec.get("medium", "underwater")})')
    generate_synthetic_dataset(root, progress=False, **spec)


def sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def rebuild_sam(checkpoint: str, work_dir: str, verbose: bool = False,
                config: Optional[str] = None) -> dict:
    """Pre-train the tiny SAM of ``config`` (default :data:`SAM_CONFIG`) in air
    into ``checkpoint`` (a plain state dict, SAM's layout); return its
    oracle-box metrics on the in-air validation split."""
    config = config or SAM_CONFIG
    ensure_data(PRETRAIN, **PRETRAIN_DATA)
    print(f'[demo] pre-training the tiny SAM in air ({config}) in {work_dir}')
    root = PRETRAIN + '/'
    runner = train_runner(config, verbose, work_dir=work_dir, cfg_options={
        'train_dataloader.dataset.data_root': root, 'val_dataloader.dataset.data_root': root,
        'val_evaluator.ann_file': root + 'annotations/val.json'})
    with quiet_stdout(verbose):
        runner.train()
        metrics = runner.val_loop.run()
    os.makedirs(osp.dirname(checkpoint), exist_ok=True)
    torch.save(runner.model.state_dict(), checkpoint)
    print(f'[demo] saved {checkpoint} (sha256 {sha256(checkpoint)})')
    return metrics


def draw_examples(model, dataset, classes, indices, out_dir: str) -> str:
    """Rows of: the scene in air, the ground truth under water, BiPA's prediction."""
    from bipa.apis import draw_instances, predict_items
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for sample in predict_items(model, dataset, indices):
        name = osp.basename(sample.img_path)
        water = cv2.cvtColor(cv2.imread(sample.img_path), cv2.COLOR_BGR2RGB)
        air = cv2.cvtColor(cv2.imread(osp.join(IN_AIR, 'test', name)), cv2.COLOR_BGR2RGB)
        gt, pred = sample.gt_instances, sample.pred_instances
        keep = pred.scores > 0.3
        panels = [
            draw_instances(air, masks=np.zeros((0, *air.shape[:2]), bool),
                           boxes=np.zeros((0, 4)), labels=[], classes=classes,
                           title=f'{name}: in air'),
            draw_instances(water, masks=gt.masks.to_ndarray().astype(bool),
                           boxes=gt.bboxes.numpy(), labels=gt.labels.tolist(), classes=classes,
                           title='under water: ground truth'),
            draw_instances(water, masks=pred.masks[keep].numpy().astype(bool),
                           boxes=pred.bboxes[keep].numpy(), labels=pred.labels[keep].tolist(),
                           scores=pred.scores[keep].tolist(), classes=classes,
                           title='BiPA trained (score > 0.3)'),
        ]
        row = np.concatenate([np.pad(p, ((0, 0), (0, 8), (0, 0)), constant_values=255)
                              for p in panels], 1)
        cv2.imwrite(osp.join(out_dir, name.replace('.jpg', '.png')),
                    cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
        rows.append(row)
    grid = osp.join(out_dir, 'demo_predictions.png')
    cv2.imwrite(grid, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    return grid


def format_rounds(rounds) -> str:
    lines = []
    for r in rounds:
        f_id = '  n/a  ' if r['f_identity'] is None else f'{r["f_identity"]:.4f}'
        rho = ', '.join(f'{w:.2f}' for w in r['rho'])
        lines.append(f'  round {r["round"]}: f(identity) {f_id} -> best f {r["f_best"]:.4f} '
                     f'({r["trials"]} trials{", identity best" if r["identity_best"] else ""})'
                     f'\n    rho = [{rho}]')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'bipa_demo_synthetic'))
    parser.add_argument('--rebuild-sam', action='store_true',
                        help='pre-train the tiny SAM in air again (about 25 min on 1 core) '
                        f'and overwrite {osp.relpath(SAM_CHECKPOINT, ROOT)}')
    parser.add_argument('--sam2', action='store_true',
                        help='the same on the tiny SAM 2.1 '
                        f'({osp.relpath(SAM2_FILES["config"], ROOT)}; with --rebuild-sam it '
                        f'pre-trains {osp.relpath(SAM2_FILES["sam_checkpoint"], ROOT)}, about '
                        '20 min on 1 core)')
    parser.add_argument('--verbose', action='store_true',
                        help="the runners' INFO logs, pycocotools' evaluation prints and "
                        "mmengine's known-harmless warnings")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        if not args.verbose:
            warnings.filterwarnings('ignore', HARMLESS_WARNING, UserWarning)
        return run(args)


def run(args) -> dict:
    from mmengine.runner import Runner

    import bipa  # noqa: F401
    from bipa.apis import format_domain_gap, measure_domain_gap, summarize_rounds, test_checkpoint

    # one thread: the tiny model's ops are too small to gain from two
    torch.set_num_threads(1)
    start = time.time()
    ensure_data(DATA, splits=SPLITS, **BENCHMARK)
    ensure_data(IN_AIR, splits=dict(test=SPLITS['test']), medium='in_air', **BENCHMARK)
    work, verbose = args.work_dir, args.verbose
    files = SAM2_FILES if getattr(args, 'sam2', False) else dict(
        config=CONFIG, sam_config=SAM_CONFIG, sam_checkpoint=SAM_CHECKPOINT)
    config, sam_config, sam_checkpoint = files['config'], files['sam_config'], \
        files['sam_checkpoint']
    sam_metrics = {}
    if args.rebuild_sam or not osp.isfile(sam_checkpoint):
        name = osp.splitext(osp.basename(sam_checkpoint))[0]
        sam_metrics = rebuild_sam(sam_checkpoint, osp.join(osp.dirname(work), name), verbose,
                                  config=sam_config)
    print(f'[demo] the tiny SAM pre-trained in air: {sam_checkpoint}')

    print('[demo] the domain gap: SAM given the ground-truth boxes of the same test scenes')
    gap = measure_domain_gap(sam_config, sam_checkpoint, in_air=IN_AIR, underwater=DATA,
                             work_dir=osp.join(work, 'domain_gap'),
                             cfg_options=dict(log_level='WARNING'),
                             quiet=not verbose)
    print('[demo] BiPA before training, underwater test split')
    sam = {'model.sam_checkpoint': sam_checkpoint}
    # evaluations: only the tables below (--verbose: and pycocotools' prints)
    quiet = dict(sam, log_level='WARNING')
    before = test_checkpoint(config, None, init_weights=True, data_root=DATA, cfg_options=quiet,
                             work_dir=osp.join(work, 'before'), quiet=not verbose)
    print('[demo] training BiPA on the underwater images (bilevel loop)')
    runner = train_runner(config, verbose, work_dir=work, data_root=DATA, cfg_options=sam)
    with quiet_stdout(verbose):  # the validation after the last iteration
        runner.train()
    checkpoint = osp.join(work, f'iter_{runner.iter}.pth')
    if not osp.isfile(checkpoint):
        runner.save_checkpoint(work, osp.basename(checkpoint), by_epoch=False,
                               meta=dict(iter=runner.iter))
    rounds = summarize_rounds(osp.join(work, 'prompt_search.db'))
    print('[demo] the trained checkpoint on the underwater test split')
    after = test_checkpoint(config, checkpoint, data_root=DATA, cfg_options=quiet,
                            work_dir=osp.join(work, 'test'), quiet=not verbose)
    print('[demo] its masks alone: the true boxes as detections, under water and in air')
    oracle = {name: test_checkpoint(config, checkpoint, data_root=root,
                                    cfg_options={**quiet, 'model.test_cfg.oracle_boxes': True},
                                    work_dir=osp.join(work, f'oracle_{name}'),
                                    quiet=not verbose)
              for name, root in (('underwater', DATA), ('in_air', IN_AIR))}
    with quiet_stdout(verbose):  # pycocotools reads the annotations
        dataset = Runner.build_dataloader(runner.cfg.test_dataloader).dataset
    grid = draw_examples(runner.model, dataset, dataset.metainfo['classes'],
                         range(min(4, len(dataset))),
                         osp.join(work, 'demo_predictions'))

    minutes = (time.time() - start) / 60
    summary = dict(
        minutes=round(minutes, 2), sam_checkpoint=sam_checkpoint,
        sam_sha256=sha256(sam_checkpoint),
        sam_rebuilt_in_air_val={k: v for k, v in sam_metrics.items() if k.startswith('coco/')},
        domain_gap={m: {k: gap[m][k] for k in gap[m] if k.startswith('coco/')} for m in gap},
        before={k: before[k] for k in METRICS},
        after={k: after[k] for k in sorted(after) if k.startswith('coco/')},
        oracle_boxes={m: {k: oracle[m][k] for k in GAP_KEYS} for m in oracle},
        search=rounds, checkpoint=checkpoint, predictions=grid)
    with open(osp.join(work, 'demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print('\n[demo] 1. the domain gap of the tiny SAM pre-trained in air '
          f'({SPLITS["test"]} test scenes)')
    print(format_domain_gap(gap))
    print('[demo] 2. the prompt search per round (f = mask BCE on D_val; lower is better)')
    print(format_rounds(rounds))
    print(f'[demo] 3. BiPA on the underwater test split ({SPLITS["test"]} images), COCO mAP')
    print(f'  {"":16s} {"bbox mAP":>9s} {"segm mAP":>9s} {"segm AP50":>10s}')
    for name, m in (('before training', before), ('trained', after)):
        print(f'  {name:16s} ' + ' '.join(f'{m[k]:{w}.3f}' for k, w in zip(METRICS, (9, 9, 10))))
    print('[demo] 4. masks given the true boxes (segm mAP): the mask branch alone')
    print(f'  {"":28s} {"under water":>11s} {"in air":>7s}')
    for name, m in (('SAM, pre-trained in air', gap), ('BiPA, trained under water', oracle)):
        print(f'  {name:28s} {m["underwater"]["coco/segm_mAP"]:11.3f} '
              f'{m["in_air"]["coco/segm_mAP"]:7.3f}')
    print(f'[demo] done in {minutes:.1f} min; checkpoint {checkpoint} (tools/test.py '
          f'{osp.relpath(config, ROOT)} {checkpoint} gives the same table); drawings {grid}')
    print(f'[demo] training curves (losses, lr, f per trial, rho per round): '
          f'tensorboard --logdir {runner.log_dir}')
    return summary


if __name__ == '__main__':
    from bipa.apis import run_cli
    raise SystemExit(run_cli(main))
