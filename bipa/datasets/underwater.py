"""COCO-format underwater instance segmentation datasets.

The class tuples follow the category order of each dataset's json files:
mmdet's :class:`~mmdet.datasets.CocoDataset` numbers the labels in the order
in which the json lists the categories whose names are in ``classes`` (not in
the order of ``classes``), so both orders must agree for the class names to
match the labels. These classes warn when they do not.

See ``data/README.md`` for the folder layouts.
"""
import warnings

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS

from .synthetic import SYNTHETIC_CLASSES

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


def _palette(classes):
    return [CLASS_COLOURS[c] for c in classes]


class _OrderCheckingCOCO(COCO):
    """COCO api that warns when the json's category order (which sets the
    labels) differs from the order of the requested class names."""

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


class _UnderwaterCocoDataset(CocoDataset):
    COCOAPI = _OrderCheckingCOCO


@DATASETS.register_module()
class UIISDataset(_UnderwaterCocoDataset):
    """UIIS (underwater image instance segmentation, WaterMask), 7 classes.

    Layout: ``data/UIIS/UDW/annotations/{train,val}.json`` with images in
    ``data/UIIS/UDW/{train,val}/``.
    """
    _CLASSES = ('fish', 'reefs', 'aquatic plants', 'wrecks/ruins',
                'human divers', 'robots', 'sea-floor')
    METAINFO = dict(classes=_CLASSES, palette=_palette(_CLASSES))


@DATASETS.register_module()
class USIS10KDataset(_UnderwaterCocoDataset):
    """USIS10K, multi-class annotations (7 classes).

    Layout: ``data/USIS10K/multi_class_annotations/
    multi_class_{train,val,test}_annotations.json`` with images in
    ``data/USIS10K/{train,val,test}/``.
    """
    _CLASSES = ('wrecks/ruins', 'fish', 'reefs', 'aquatic plants',
                'human divers', 'robots', 'sea-floor')
    METAINFO = dict(classes=_CLASSES, palette=_palette(_CLASSES))


@DATASETS.register_module()
class USIS10KForegroundDataset(_UnderwaterCocoDataset):
    """USIS10K, class-agnostic (salient foreground) annotations.

    Layout: ``data/USIS10K/foreground_annotations/
    foreground_{train,val,test}_annotations.json`` with images in
    ``data/USIS10K/{train,val,test}/``.
    """
    _CLASSES = ('foreground', )
    METAINFO = dict(classes=_CLASSES, palette=_palette(_CLASSES))


@DATASETS.register_module()
class SyntheticUnderwaterDataset(_UnderwaterCocoDataset):
    """The synthetic dataset of :mod:`bipa.datasets.synthetic`.

    Layout: ``{root}/annotations/{split}.json`` with images in
    ``{root}/{split}/`` (``data_prefix=dict(img='{split}/')``); generate it
    with ``tools/dataset_converters/generate_synthetic.py``.
    """
    _CLASSES = SYNTHETIC_CLASSES
    METAINFO = dict(classes=_CLASSES, palette=_palette(_CLASSES))
