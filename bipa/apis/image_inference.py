"""Predict with a trained model on image files, through mmdet's DetInferencer."""
import glob
import json
import os
import os.path as osp
import warnings
from collections import Counter
from typing import List, Sequence

from mmengine.config import Config

from ..models import check_checkpoint_fits, complete_checkpoint

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def is_image(path: str) -> bool:
    return osp.isfile(path) and path.lower().endswith(IMG_EXTENSIONS)


def expand_inputs(inputs: Sequence[str]) -> List[str]:
    """Image paths of files, folders (not recursive) and glob patterns (``**``
    recurses), in order, without repeats.

    Raises:
        FileNotFoundError: naming the input, when one gives no image.
    """
    paths = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(osp.join(item, f) for f in os.listdir(item))
            found = [p for p in found if is_image(p)]
            if not found:
                raise FileNotFoundError(f'no images in folder: {item}')
        elif osp.isfile(item):
            found = [item]
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            found = [p for p in matches if is_image(p)]
            if not found:
                raise FileNotFoundError(f'no images match the pattern: {item}')
        else:
            raise FileNotFoundError(f'no such image, folder or pattern: {item}')
        paths.extend(found)
    unique = list(dict.fromkeys(paths))
    repeated = [n for n, c in Counter(osp.basename(p) for p in unique).items() if c > 1]
    if repeated:
        warnings.warn(f'several inputs are named {repeated[:5]}: their files under '
                      f'vis/ and preds/ overwrite each other (predictions.json keeps all)')
    return unique


def build_inferencer(config: str, checkpoint: str, *, device: str = 'cpu',
                     allow_partial: bool = False, show_progress: bool = True):
    """mmdet's ``DetInferencer`` for a BiPA config and checkpoint; a checkpoint
    whose keys do not fit the model is refused unless ``allow_partial``; a
    lean one gets its frozen weights from the config's files."""
    from mmdet.apis import DetInferencer  # slow to import

    cfg = Config.fromfile(config)
    # no LocalVisBackend: DetInferencer writes vis/ itself, and the backend
    # would only warn that it has no save_dir
    if 'visualizer' in cfg:
        cfg.visualizer.pop('vis_backends', None)
    # DetInferencer replaces the pipeline's 'LoadImageFromFile' by its own
    # loader (for paths and arrays) and requires it by that name
    for transform in cfg.test_dataloader.dataset.pipeline:
        if transform['type'] == 'CheckedLoadImageFromFile':
            transform['type'] = 'LoadImageFromFile'
    class LeanAwareInferencer(DetInferencer):
        def _load_weights_to_model(self, model, weights, cfg) -> None:
            if weights is not None:  # a lean checkpoint's frozen weights, from their files
                complete_checkpoint(model, weights, name=checkpoint)
            super()._load_weights_to_model(model, weights, cfg)

    inferencer = LeanAwareInferencer(model=cfg, weights=checkpoint, device=device,
                                     show_progress=show_progress)
    if '://' not in checkpoint:
        check_checkpoint_fits(inferencer.model, checkpoint, allow_partial=allow_partial)
    return inferencer


def combine_predictions(paths: Sequence[str], predictions: Sequence[dict],
                        classes: Sequence[str], score_thr: float) -> list:
    """One json-ready record per image of the instances scoring above ``score_thr``.

    ``predictions`` are ``DetInferencer``'s dicts (``labels``, ``scores``,
    ``bboxes`` and ``masks``, the masks COCO RLE from ``pycocotools.mask.encode``).
    """
    records = []
    for path, pred in zip(paths, predictions):
        masks = pred.get('masks', [None] * len(pred['labels']))
        instances = []
        for label, score, bbox, mask in zip(pred['labels'], pred['scores'], pred['bboxes'],
                                            masks):
            if score <= score_thr:
                continue
            inst = {'label': int(label), 'class': classes[label], 'score': float(score),
                    'bbox': [float(v) for v in bbox]}
            if mask is not None:
                counts = mask['counts']
                inst['mask'] = dict(size=list(mask['size']),
                                    counts=counts.decode() if isinstance(counts, bytes)
                                    else counts)
            instances.append(inst)
        records.append(dict(image=path, instances=instances))
    return records


def predict_files(inferencer, paths: Sequence[str], *, out_dir: str, score_thr: float = 0.3,
                  batch_size: int = 1) -> list:
    """Predict on image ``paths``; write ``vis/`` (drawings), ``preds/`` (mmdet's
    per-image json) and ``predictions.json`` (:func:`combine_predictions`'s
    records) under ``out_dir``, and return the records."""
    results = inferencer(list(paths), batch_size=batch_size, out_dir=out_dir,
                         pred_score_thr=score_thr, no_save_pred=False, show=False)
    classes = inferencer.model.dataset_meta['classes']
    records = combine_predictions(paths, results['predictions'], classes, score_thr)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'predictions.json'), 'w') as f:
        json.dump(records, f)
    return records
