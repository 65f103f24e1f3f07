from .atomic_checkpoint_hook import AtomicCheckpointHook
from .bilevel_config import BilevelConfig, FinetuneConfig, SearchConfig
from .bilevel_loop import BilevelLoop
from .gradient_search import GradientSearch
from .prompt_objective import MaskObjective
from .prompt_search import PromptSearch
from .sync_norm_stats_hook import SyncNormStatsHook

__all__ = ['AtomicCheckpointHook', 'BilevelConfig', 'BilevelLoop', 'FinetuneConfig',
           'GradientSearch', 'MaskObjective', 'PromptSearch', 'SearchConfig', 'SyncNormStatsHook']
