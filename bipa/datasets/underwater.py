"""COCO-format underwater instance segmentation datasets.

The class tuples follow the category order of each dataset's json files:
mmdet's :class:`~mmdet.datasets.CocoDataset` numbers the labels in the order
in which the json lists the categories whose names are in ``classes`` (not in
the order of ``classes``), so both orders must agree for the class names to
match the labels. These classes warn when they do not.

See ``data/README.md`` for the folder layouts.
"""
import json
import logging
import warnings
from collections import Counter, defaultdict
from typing import List, Optional

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from ..utils import examples

# The classes of the synthetic dataset (bipa.datasets.synthetic), in the
# order of its category ids.
SYNTHETIC_CLASSES = ('fish', 'reefs', 'aquatic plants', 'human divers', 'robots')

# One colour per class name, shared by all datasets (RGB).
CLASS_COLOURS = {
    'fish': (255, 127, 14),
    'reefs': (214, 39, 140),
    'aquatic plants': (44, 190, 60),
    'wrecks/ruins': (140, 86, 45),
    'human divers': (31, 119, 255),
    'robots': (250, 215, 0),
    'sea-floor': (160, 160, 160),
    'foreground': (0, 220, 220),
}


def _metainfo(*classes: str) -> dict:
    """A dataset's ``METAINFO``: its classes, each with its fixed colour."""
    return dict(classes=classes, palette=[CLASS_COLOURS[c] for c in classes])


class AnnotationError(ValueError):
    """An annotation file that cannot be used as it is."""


class _CheckedCOCO(COCO):
    """COCO api that refuses malformed annotation files with a message naming
    the file and the offending entries, and warns when the json's category
    order (which sets the labels) differs from the requested class names."""

    def __init__(self, annotation_file=None):
        self.annotation_file = annotation_file
        try:
            super().__init__(annotation_file)
        except json.JSONDecodeError as err:
            raise AnnotationError(f'{annotation_file}: not valid JSON ({err}); is the file '
                                  'truncated?') from None
        except (KeyError, TypeError, AssertionError) as err:
            raise AnnotationError(f'{annotation_file}: not a COCO instance annotation file '
                                  f'({type(err).__name__}: {err})') from None
        self._check()

    def _check(self):
        name = self.annotation_file
        for key in ('images', 'annotations', 'categories'):
            if not isinstance(self.dataset.get(key), list):
                raise AnnotationError(f"{name}: lacks the list '{key}' of a COCO instance "
                                      'annotation file')
        problems = []
        bad_imgs = [i.get('id') for i in self.dataset['images']
                    if not {'id', 'file_name', 'height', 'width'} <= set(i)]
        if bad_imgs:
            problems.append(f'images without id/file_name/height/width: {examples(bad_imgs)}')
        unknown_img = [a['id'] for a in self.dataset['annotations']
                       if a.get('image_id') not in self.imgs]
        if unknown_img:
            problems.append(f'annotations pointing to unknown image ids: annotation ids '
                            f'{examples(unknown_img)}')
        unknown_cat = [a['id'] for a in self.dataset['annotations']
                       if a.get('category_id') not in self.cats]
        if unknown_cat:
            problems.append(f'annotations pointing to unknown category ids: annotation '
                            f'ids {examples(unknown_cat)}')
        problems += self._duplicates()
        bad_box = [a['id'] for a in self.dataset['annotations']
                   if not (isinstance(a.get('bbox'), list) and len(a['bbox']) == 4)]
        if bad_box:
            problems.append(f'annotations without a 4-number bbox: annotation ids '
                            f'{examples(bad_box)}')
        if problems:
            raise AnnotationError(f'{name}: ' + '; '.join(problems))

    def _duplicates(self) -> List[str]:
        """pycocotools indexes images and annotations by id: a repeated id keeps
        one entry silently, and one file under two ids is trained and scored
        twice."""
        problems = []
        entries, files = defaultdict(list), defaultdict(set)
        for img in self.dataset['images']:
            entries[img.get('id')].append(img)
            files[img.get('file_name')].add(img.get('id'))
        twice = [i for i, e in entries.items() if len(e) > 1
                 and all(x == e[0] for x in e)]
        clash = [f'{i} ({", ".join(str(x.get("file_name")) for x in e)})'
                 for i, e in entries.items() if len(e) > 1 and i not in twice]
        shared = [f'{f} (ids {", ".join(str(i) for i in sorted(ids, key=str))})'
                  for f, ids in files.items() if len(ids) > 1]
        ann_ids = Counter(a.get('id') for a in self.dataset['annotations'])
        if clash:
            problems.append(f'image ids given to more than one image: {examples(clash)}')
        if shared:
            problems.append(f'files listed under more than one image id: {examples(shared)}')
        if twice:
            problems.append(f'image entries listed twice: ids {examples(twice)}')
        repeated = [i for i, n in ann_ids.items() if n > 1]
        if repeated:
            problems.append(f'annotation ids used more than once: {examples(repeated)}')
        return problems

    def get_cat_ids(self, cat_names=[], sup_names=[], cat_ids=[]):
        ids = super().get_cat_ids(cat_names, sup_names, cat_ids)
        if cat_names and not sup_names and not cat_ids:
            names = [self.cats[i]['name'] for i in ids]
            wanted = list(cat_names)
            missing = [c for c in wanted if c not in names]
            if missing:
                warnings.warn(f'classes {missing} are not categories of the '
                              f'annotation file')
            elif names != wanted:
                warnings.warn(
                    f'the annotation file lists the categories in the order '
                    f'{names}, which differs from the classes {wanted}; '
                    f'labels follow the file, so the class names will not '
                    f'match them')
        return ids


def _instance_defect(ann: dict, img_info: dict) -> Optional[str]:
    """Why mmdet would drop (or choke on) this annotation, or ``None``."""
    x1, y1, w, h = ann['bbox']
    inter_w = max(0, min(x1 + w, img_info['width']) - max(x1, 0))
    inter_h = max(0, min(y1 + h, img_info['height']) - max(y1, 0))
    if inter_w * inter_h == 0:
        return 'box outside the image'
    if ann.get('area', 0) <= 0 or w < 1 or h < 1:
        return 'degenerate box or zero area'
    if not ann.get('segmentation'):
        return 'empty mask'
    return None


class _UnderwaterCocoDataset(CocoDataset):
    """CocoDataset with checked annotation files and counted instance skips.

    Instances with a box outside the image, a degenerate box, zero area or an
    empty mask are skipped (as mmdet skips most of them silently); their
    number per reason is logged once per annotation file.

    Annotations of a category that the json declares but that is not one of
    the dataset's classes (which mmdet and CocoMetric both leave out without
    a word) are an :class:`AnnotationError`; with
    ``ignore_extra_categories=True`` they are dropped with one warning giving
    their number per category.
    """
    COCOAPI = _CheckedCOCO

    def __init__(self, *args, ignore_extra_categories: bool = False, **kwargs):
        self.ignore_extra_categories = ignore_extra_categories
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        self._skipped = Counter()
        self._extra = Counter()  # category name -> annotations not of a class
        self.skipped_annotations: List[tuple] = []  # (annotation id, reason)
        data_list = super().load_data_list()
        self._check_extra_categories()
        if self._skipped:
            reasons = ', '.join(f'{n} {why}' for why, n in sorted(self._skipped.items()))
            print_log(f'{self.ann_file}: skipped {sum(self._skipped.values())} instance(s): '
                      f'{reasons}', logger='current', level=logging.WARNING)
        return data_list

    def _check_extra_categories(self) -> None:
        if not self._extra:
            return
        counts = ', '.join(f"'{name}' ({n})" for name, n in sorted(self._extra.items()))
        total = sum(self._extra.values())
        if not self.ignore_extra_categories:
            raise AnnotationError(
                f'{self.ann_file}: {total} annotation(s) of categories that are not classes of '
                f'{type(self).__name__}: {counts}; give them a class in the json, remove them, '
                'or set ignore_extra_categories=True in the dataset config to drop them')
        print_log(f'{self.ann_file}: dropped {total} annotation(s) of categories that are not '
                  f'classes (ignore_extra_categories=True): {counts}',
                  logger='current', level=logging.WARNING)

    def filter_data(self) -> List[dict]:
        kept = super().filter_data()
        if not kept and not self.test_mode and self.data_list:
            raise AnnotationError(
                f'{self.ann_file}: no image left for training after filter_cfg='
                f'{self.filter_cfg} ({len(self.data_list)} images: filter_empty_gt drops '
                'those without a usable instance, min_size those smaller than it)')
        return kept

    def parse_data_info(self, raw_data_info: dict) -> dict:
        img_info = raw_data_info['raw_img_info']
        kept = []
        for ann in raw_data_info['raw_ann_info']:
            ignored = ann.get('ignore', False)
            if not ignored and ann['category_id'] not in self.cat_ids:  # mmdet would skip it
                self._extra[self.coco.cats[ann['category_id']]['name']] += 1
                continue
            why = None if ignored else _instance_defect(ann, img_info)
            if why is None:
                kept.append(ann)
            else:
                self._skipped[why] += 1
                self.skipped_annotations.append((ann.get('id'), why))
        return super().parse_data_info(dict(raw_data_info, raw_ann_info=kept))


def check_evaluation_split(dataset) -> None:
    """Before inference on an annotated split: it holds instances to score, and
    the dataset keeps every annotation of the json, which CocoMetric scores
    (pycocotools crashes on an empty mask after the whole inference; a box
    outside the image would count as a missed instance)."""
    dataset.full_init()
    ann_file = getattr(dataset, 'ann_file', '')
    if not any(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset))):
        raise AnnotationError(f'{ann_file}: the split holds no instance to evaluate (every '
                              'mAP would be -1); use the annotated split, or set '
                              'test_evaluator.format_only=True to only write predictions')
    skipped = getattr(dataset, 'skipped_annotations', [])
    if skipped:
        listed = examples(f'{i} ({why})' for i, why in skipped)
        raise AnnotationError(f'{ann_file}: CocoMetric would score annotations the dataset '
                              f'skips: ids {listed}; fix or remove them in the json')


@DATASETS.register_module()
class UIISDataset(_UnderwaterCocoDataset):
    """UIIS (underwater image instance segmentation, WaterMask), 7 classes.

    Layout: ``data/UIIS/UDW/annotations/{train,val}.json`` with images in
    ``data/UIIS/UDW/{train,val}/``.
    """
    METAINFO = _metainfo('fish', 'reefs', 'aquatic plants', 'wrecks/ruins', 'human divers',
                         'robots', 'sea-floor')


@DATASETS.register_module()
class USIS10KDataset(_UnderwaterCocoDataset):
    """USIS10K, multi-class annotations (7 classes).

    Layout: ``data/USIS10K/multi_class_annotations/
    multi_class_{train,val,test}_annotations.json`` with images in
    ``data/USIS10K/{train,val,test}/``.
    """
    METAINFO = _metainfo('wrecks/ruins', 'fish', 'reefs', 'aquatic plants', 'human divers',
                         'robots', 'sea-floor')


@DATASETS.register_module()
class USIS10KForegroundDataset(_UnderwaterCocoDataset):
    """USIS10K, class-agnostic (salient foreground) annotations.

    Layout: ``data/USIS10K/foreground_annotations/
    foreground_{train,val,test}_annotations.json`` with images in
    ``data/USIS10K/{train,val,test}/``.
    """
    METAINFO = _metainfo('foreground')


@DATASETS.register_module()
class SyntheticUnderwaterDataset(_UnderwaterCocoDataset):
    """The synthetic dataset of :mod:`bipa.datasets.synthetic` (either medium).

    Layout: ``{root}/annotations/{split}.json`` with images in
    ``{root}/{split}/`` (``data_prefix=dict(img='{split}/')``); generate it
    with ``tools/dataset_converters/generate_synthetic.py``.
    """
    METAINFO = _metainfo(*SYNTHETIC_CLASSES)
