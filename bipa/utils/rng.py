import random
from typing import List, Optional, Union

import numpy as np
import torch
from mmengine.dist import gather_object

from .config_error import ConfigError


def get_rng_states() -> dict:
    """The torch (CPU and, once initialised, CUDA), numpy and ``random`` states."""
    states = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(),
                  python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore what :func:`get_rng_states` returned."""
    torch.set_rng_state(states['torch'])
    np.random.set_state(states['numpy'])
    random.setstate(states['python'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


def gather_rng_states() -> Optional[List[dict]]:
    """Every rank's :func:`get_rng_states`, indexed by rank, on rank 0 (None
    on the others); one process: a list of one. A collective: every rank
    must call it."""
    return gather_object(get_rng_states(), dst=0)


def rank_rng_states(saved: Union[dict, List[dict]], *, rank: int, world_size: int,
                    checkpoint: str) -> dict:
    """This rank's states in what a checkpoint saved: a list indexed by rank,
    or one dict (checkpoints before per-rank states), which every rank
    restores. A list written by another number of processes is refused: the
    iterations of an epoch, the data each rank reads and the RNG streams all
    depend on it, so such a run would not continue the interrupted one."""
    if isinstance(saved, dict):
        return saved
    if len(saved) != world_size:
        n = len(saved)
        how = ('tools/train.py CONFIG --resume' if n == 1 else
               f'tools/dist_train.sh CONFIG {n} --resume')
        raise ConfigError(
            f'cannot resume from {checkpoint}: it was written by {n} process(es), this run '
            f'has {world_size}; resume it with {n} ({how}), or start a new run from its '
            'weights (load_from, without --resume)')
    return saved[rank]
