from .transforms import CheckedLoadImageFromFile, ImageReadError
from .holdout import build_holdout_split, holdout_image_ids
from .synthetic import (SYNTHETIC_CLASSES, generate_synthetic_dataset,
                        render_synthetic_image)
from .underwater import (AnnotationError, SyntheticUnderwaterDataset, UIISDataset,
                         USIS10KDataset, USIS10KForegroundDataset, check_evaluation_split)

__all__ = [
    'AnnotationError', 'check_evaluation_split', 'CheckedLoadImageFromFile', 'ImageReadError',
    'build_holdout_split', 'holdout_image_ids', 'SYNTHETIC_CLASSES',
    'generate_synthetic_dataset', 'render_synthetic_image', 'UIISDataset',
    'USIS10KDataset', 'USIS10KForegroundDataset', 'SyntheticUnderwaterDataset'
]
