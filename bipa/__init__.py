"""BiPA: bilevel prompt adaptation of SAM, as an MMDetection 3.x plugin.

Importing the package registers its modules with mmdet/mmengine registries
lets mmengine load its own checkpoints on torch >= 2.6, and makes mmengine's
``BaseDataset.get_subset`` copy each subset afresh (see ``utils.dataset_compat``).
"""
from .utils import fix_dataset_subset_memo, register_checkpoint_safe_globals

register_checkpoint_safe_globals()
fix_dataset_subset_memo()

from . import datasets, engine, models  # noqa: E402,F401  (registration)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
