from .bipa_roi_head import BiPARoIHead
from .sam_prompt_mask_head import SAMPromptMaskHead
from .sparse_prompt_generator import SparsePromptGenerator

__all__ = ['BiPARoIHead', 'SAMPromptMaskHead', 'SparsePromptGenerator']
