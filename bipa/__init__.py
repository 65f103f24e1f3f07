"""BiPA: bilevel prompt adaptation of SAM, as an MMDetection 3.x plugin.

Importing the package registers its modules with mmdet/mmengine registries
and lets mmengine load its own checkpoints on torch >= 2.6.
"""
from .utils import register_checkpoint_safe_globals

register_checkpoint_safe_globals()

from . import datasets, engine, models  # noqa: E402,F401  (registration)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
