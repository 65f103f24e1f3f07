"""BiPA: bilevel prompt adaptation of SAM, as an MMDetection 3.x plugin.

Importing the package registers its modules with mmdet/mmengine registries
and lets mmengine load its own checkpoints on torch >= 2.6.
"""
from .utils import register_checkpoint_safe_globals
from .version import __version__

register_checkpoint_safe_globals()

__all__ = ['__version__']
