from ..sam_parts import SAM_ARCHS
from .sam_vit_adapter import SAMViTAdapter

__all__ = ['SAM_ARCHS', 'SAMViTAdapter']
