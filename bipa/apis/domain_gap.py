"""The domain gap of a SAM: its oracle-box segm mAP on the same scenes in air
and under water (the synthetic data's two media)."""
import json
import os.path as osp
from typing import Optional

from ..datasets import AnnotationError
from .inference import oracle_box_metrics

GAP_KEYS = ('coco/segm_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP_75')


def check_same_scenes(in_air: str, underwater: str, split: str = 'test') -> None:
    """Both data roots' ``split`` must annotate the same scenes."""
    anns = []
    for root in (in_air, underwater):
        path = osp.join(root, 'annotations', f'{split}.json')
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} not found: generate it with '
                                    'tools/dataset_converters/generate_synthetic.py')
        with open(path) as f:
            coco = json.load(f)
        anns.append([(a['image_id'], a['bbox'], a['category_id']) for a in coco['annotations']])
    if anns[0] != anns[1]:
        raise AnnotationError(f'{in_air} and {underwater} hold different scenes in their {split} '
                              'split: generate both with the same --seed and sizes')


def measure_domain_gap(sam_config: str, checkpoint: str, *, in_air: str, underwater: str,
                       work_dir: str, cfg_options: Optional[dict] = None,
                       quiet: bool = False) -> dict:
    """``{'in_air': metrics, 'underwater': metrics}`` of SAM's masks for the
    ground-truth boxes of each data root's test split (``quiet``: without
    pycocotools' prints, as in :func:`test_checkpoint`)."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'SAM checkpoint not found: {checkpoint}')
    check_same_scenes(in_air, underwater)
    return {name: oracle_box_metrics(sam_config, checkpoint, root, cfg_options=cfg_options,
                                     work_dir=osp.join(work_dir, name), quiet=quiet)
            for name, root in (('in_air', in_air), ('underwater', underwater))}


def format_domain_gap(gap: dict) -> str:
    lines = [f'{"oracle boxes":14s} {"segm mAP":>9s} {"AP50":>7s} {"AP75":>7s}']
    for name, m in gap.items():
        values = ' '.join(f'{m[k]:{w}.3f}' for k, w in zip(GAP_KEYS, (9, 7, 7)))
        lines.append(f'{name:14s} {values}')
    return '\n'.join(lines)
