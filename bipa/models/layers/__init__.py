from .adapters import BlockAdapter, BottleneckAdapter, ColorAdapter
from .channel_attention import ChannelAttention
from .dense_prompt import DENSE_PROMPT_MODES, DensePrompt
from .ema import EMA
from .norm import LayerNorm2d
from .rel_pos_attention import decomposed_rel_pos, rel_pos_attention

__all__ = [
    'BlockAdapter', 'BottleneckAdapter', 'ColorAdapter', 'ChannelAttention',
    'DENSE_PROMPT_MODES', 'DensePrompt', 'EMA', 'LayerNorm2d', 'decomposed_rel_pos',
    'rel_pos_attention'
]
