from .checkpoint_compat import register_checkpoint_safe_globals
from .work_dir_lock import WorkDirBusyError, lock_work_dir

__all__ = ['register_checkpoint_safe_globals', 'WorkDirBusyError', 'lock_work_dir']
