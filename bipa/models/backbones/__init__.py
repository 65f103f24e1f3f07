from ..sam_parts import SAM_ARCHS
from .encoder_output import EncoderOutput
from .sam2_hiera_adapter import SAM2HieraAdapter
from .sam_vit_adapter import SAMViTAdapter

__all__ = ['SAM_ARCHS', 'EncoderOutput', 'SAMViTAdapter', 'SAM2HieraAdapter']
