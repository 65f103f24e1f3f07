from .checkpoint_compat import register_checkpoint_safe_globals
from .run_config import load_run_config
from .work_dir_lock import WorkDirBusyError, lock_work_dir

__all__ = [
    'register_checkpoint_safe_globals', 'load_run_config', 'WorkDirBusyError', 'lock_work_dir'
]
