from .checkpoint_compat import register_checkpoint_safe_globals
from .checkpoint_files import UnreadableCheckpointError, checkpoint_problem, find_resume_checkpoint
from .choice_check import check_choice
from .config_check import check_config
from .config_error import ConfigError
from .dataset_compat import fix_dataset_subset_memo
from .launcher import die_with_launcher, guard_forked_children
from .rng import get_rng_states, set_rng_states
from .run_config import (
                         check_run_inputs,
                         load_run_config,
                         setup_cuda_allocator,
                         setup_launcher,
                         shutdown_distributed,
                         switch_amp_off,
)
from .text import examples
from .work_dir_lock import WorkDirBusyError, lock_work_dir

__all__ = [
    'ConfigError', 'check_choice', 'check_config', 'register_checkpoint_safe_globals',
    'fix_dataset_subset_memo', 'get_rng_states', 'set_rng_states', 'load_run_config',
    'setup_launcher', 'check_run_inputs', 'switch_amp_off',
    'setup_cuda_allocator', 'shutdown_distributed',
    'WorkDirBusyError', 'lock_work_dir', 'examples', 'UnreadableCheckpointError',
    'checkpoint_problem', 'find_resume_checkpoint', 'die_with_launcher',
    'guard_forked_children'
]
