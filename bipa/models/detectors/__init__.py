from .bipa import BiPA
from .box_prompted_sam import BoxPromptedSAM

__all__ = ['BiPA', 'BoxPromptedSAM']
