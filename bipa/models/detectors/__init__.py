from .bipa import BiPA
from .box_prompted_sam import BoxPromptedSAM
from .box_prompted_sam2 import BoxPromptedSAM2

__all__ = ['BiPA', 'BoxPromptedSAM', 'BoxPromptedSAM2']
