"""Keep the running statistics of normalisation layers equal on every rank."""
import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce_params, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.nn.modules.batchnorm import _NormBase


@HOOKS.register_module()
class SyncNormStatsHook(Hook):
    """Average the running mean and variance of every batch-norm layer across
    ranks after each training iteration (a no-op in one process).

    Under DDP each rank normalises with its own batch statistics (mmdet's
    default; set ``sync_bn='torch'`` for SyncBN on GPUs) and would otherwise
    drift to its own running statistics: the checkpoints (rank 0's) and the
    prompt search would then see a model no other rank has. Runs before the
    checkpoint hook, so every checkpoint holds the averaged statistics.
    """

    priority = 'LOW'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if get_world_size() == 1:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        stats = [buf for m in model.modules() if isinstance(m, _NormBase)
                 and m.track_running_stats and m.running_mean is not None
                 for buf in (m.running_mean, m.running_var)]
        if stats:
            all_reduce_params([s for s in stats if torch.is_floating_point(s)], op='mean')
