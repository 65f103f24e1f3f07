from .sam_vit_adapter import SAM_ARCHS, SAMViTAdapter

__all__ = ['SAM_ARCHS', 'SAMViTAdapter']
