"""mmengine's CheckpointHook with checkpoints written whole or not at all."""
import os.path as osp
from typing import List

from mmdet.registry import HOOKS
from mmengine.dist import barrier, is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.runner import find_latest_checkpoint

from ..models.frozen_weights import complete_checkpoint, make_lean
from ..utils import UnreadableCheckpointError
from ..utils.checkpoint_files import (
    ATOMIC_BACKEND,
    load_from_problem,
    remove_stale_temporaries,
    repair_last_checkpoint,
)


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

    Checkpoints are lean unless ``save_frozen=True``: they leave out the
    frozen weights that the config's files supply (SAM's, the ResNet's) and
    record those files (:mod:`bipa.models.frozen_weights`); a loaded lean
    checkpoint gets them back from the config's files, which must be the same
    files. A run's start removes the temporary files that killed writes left
    in the work dir (one line lists them), and an auto-resume only follows a
    ``last_checkpoint`` into the work dir it is in (a copied work dir resumes
    its own checkpoints). :meth:`save_at` writes a checkpoint outside the
    hook's interval (the loop's before a search, or on a stop signal), counted
    by ``max_keep_ckpts`` like the others.
    """

    def __init__(self, *args, backend_args=None, file_client_args=None, out_dir=None,
                 save_frozen: bool = False, **kwargs) -> None:
        if backend_args is None and file_client_args is None and '://' not in str(out_dir):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, file_client_args=file_client_args,
                         out_dir=out_dir, **kwargs)
        self.save_frozen = save_frozen

    def _local_folders(self, runner) -> List[str]:
        """The work dir, and the folder ``out_dir`` puts checkpoints in when it
        is set and local (mmengine: ``out_dir/<work dir name>``)."""
        folders = [runner.work_dir]
        if self.out_dir is not None and '://' not in str(self.out_dir):
            out = str(self.out_dir)
            if osp.abspath(out) != osp.abspath(runner.work_dir):
                folders.append(osp.join(out, osp.basename(osp.normpath(runner.work_dir))))
        return folders

    def before_run(self, runner) -> None:
        if is_main_process():
            removed = remove_stale_temporaries(self._local_folders(runner))
            if removed:
                runner.logger.warning(removed)
        # before Runner.load_or_resume, which reads last_checkpoint
        if not runner.cfg.get('resume', False):
            return
        load_from = runner.cfg.get('load_from')
        if load_from is None:
            # every rank decides (and fails) alike; rank 0 writes, the others wait for it
            warning = repair_last_checkpoint(runner.work_dir, write=is_main_process(),
                                             folders=self._local_folders(runner))
            if warning is not None:
                runner.logger.warning(warning)
            barrier()
        elif (problem := load_from_problem(load_from, resume=True)) is not None:
            raise UnreadableCheckpointError(problem)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.save_frozen:
            make_lean(runner.model, checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        name = runner.cfg.get('load_from') or find_latest_checkpoint(runner.work_dir)
        complete_checkpoint(runner.model, checkpoint, name=name or 'the checkpoint')

    def save_at(self, runner, step: int) -> None:
        """Write ``iter_<step>.pth`` now (``step``: iterations trained), named in
        ``last_checkpoint`` and counted by ``max_keep_ckpts``; a later save of
        the same step by the hook replaces the file and counts once."""
        if self.by_epoch:
            raise TypeError('AtomicCheckpointHook.save_at needs by_epoch=False (BilevelLoop '
                            'counts iterations)')
        self._save_checkpoint_with_step(runner, step, meta=dict(epoch=runner.epoch, iter=step))
