"""mmengine's CheckpointHook with checkpoints written whole or not at all."""
from mmdet.registry import HOOKS
from mmengine.dist import barrier, is_main_process
from mmengine.hooks import CheckpointHook

from ..utils import UnreadableCheckpointError, checkpoint_problem
from ..utils.checkpoint_files import ATOMIC_BACKEND, repair_last_checkpoint


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose checkpoints are written to a
    temporary file in their folder and renamed onto their name, so that a
    process killed mid-write leaves the previous file under that name, and
    whose auto-resume skips a checkpoint it cannot read.

    Writes go through the file backend ``'atomic_local'`` unless
    ``backend_args`` or ``out_dir`` choose another storage; mmengine points
    ``work_dir/last_checkpoint`` at a checkpoint after its rename. On an
    auto-resume (``resume=True`` without ``load_from``), before mmengine reads
    ``last_checkpoint``: when it names a file that is missing, empty or
    truncated (or is itself empty or missing while ``iter_<n>.pth`` files
    exist), it is pointed at the newest readable ``iter_<n>.pth``, with one
    warning; with none readable the run stops with
    :class:`~bipa.utils.UnreadableCheckpointError`, as it does when the file
    given to resume from (``load_from``) cannot be read. (Both read
    ``resume`` and ``load_from`` from ``runner.cfg``, as ``Runner.from_cfg``
    sets them.)
    """

    def __init__(self, *args, backend_args=None, file_client_args=None, out_dir=None,
                 **kwargs) -> None:
        if backend_args is None and file_client_args is None and '://' not in str(out_dir):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, file_client_args=file_client_args,
                         out_dir=out_dir, **kwargs)

    def before_run(self, runner) -> None:
        # before Runner.load_or_resume, which reads last_checkpoint
        if not runner.cfg.get('resume', False):
            return
        load_from = runner.cfg.get('load_from')
        if load_from is None:
            # every rank decides (and fails) alike; rank 0 writes, the others wait for it
            warning = repair_last_checkpoint(runner.work_dir, write=is_main_process())
            if warning is not None:
                runner.logger.warning(warning)
            barrier()
        elif '://' not in str(load_from) and (problem := checkpoint_problem(str(load_from))):
            raise UnreadableCheckpointError(
                f'cannot resume from {load_from}: {problem}; --resume without a path resumes '
                'from the newest readable checkpoint in the work dir')
