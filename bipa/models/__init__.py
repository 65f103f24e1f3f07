from .backbones import *  # noqa: F401,F403
from .checkpoint_check import check_checkpoint_fits  # noqa: F401
from .detectors import *  # noqa: F401,F403
from .frozen_weights import FrozenWeightsError, complete_checkpoint, make_lean  # noqa: F401
from .layers import DensePrompt  # noqa: F401
from .mask_decoders import SAM2MaskDecoder, SAMMaskDecoder  # noqa: F401
from .mask_prompts import MaskPrompts  # noqa: F401
from .necks import *  # noqa: F401,F403
from .prompted_features import PromptedFeatures  # noqa: F401
from .roi_heads import *  # noqa: F401,F403
from .sam_checkpoint import SAMCheckpointError, load_sam_checkpoint  # noqa: F401
