from .dval import SearchSplit, default_search_pipeline, val_split_dataset
from .holdout import HoldoutError, build_holdout_split, holdout_image_ids
from .transforms import CheckedLoadImageFromFile, ImageReadError
from .underwater import (
                         SYNTHETIC_CLASSES,
                         AnnotationError,
                         SyntheticUnderwaterDataset,
                         UIISDataset,
                         USIS10KDataset,
                         USIS10KForegroundDataset,
                         check_evaluation_split,
)

__all__ = [
    'AnnotationError', 'check_evaluation_split', 'CheckedLoadImageFromFile', 'ImageReadError',
    'HoldoutError', 'build_holdout_split', 'holdout_image_ids', 'SearchSplit',
    'default_search_pipeline',
    'val_split_dataset', 'SYNTHETIC_CLASSES',
    'UIISDataset',
    'USIS10KDataset', 'USIS10KForegroundDataset', 'SyntheticUnderwaterDataset'
]
