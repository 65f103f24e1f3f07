from .atomic_checkpoint_hook import AtomicCheckpointHook
from .bilevel_config import BilevelConfig, FinetuneConfig, SearchConfig
from .bilevel_loop import BilevelLoop
from .prompt_objective import MaskObjective
from .solvers import BaseSolver, GradientSolver, OptunaSolver
from .sync_norm_stats_hook import SyncNormStatsHook

__all__ = ['AtomicCheckpointHook', 'BaseSolver', 'BilevelConfig', 'BilevelLoop',
           'FinetuneConfig', 'GradientSolver', 'MaskObjective', 'OptunaSolver', 'SearchConfig',
           'SyncNormStatsHook']
