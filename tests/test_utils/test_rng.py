"""Per-rank RNG states: gathered (one process here: a list of one), and each
rank's picked from a checkpoint, old single-dict checkpoints included."""
import random

import numpy as np
import pytest
import torch

from bipa.utils import ConfigError
from bipa.utils.rng import gather_rng_states, get_rng_states, rank_rng_states, set_rng_states


def draws():
    return torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)]


def test_states_restore_all_three_generators():
    states = get_rng_states()
    first = draws()
    set_rng_states(states)
    second = draws()
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_one_process_gathers_a_list_of_one():
    gathered = gather_rng_states()
    assert len(gathered) == 1 and gathered[0].keys() >= {'torch', 'numpy', 'python'}
    assert torch.equal(gathered[0]['torch'], torch.get_rng_state())


def test_each_rank_takes_its_own_states():
    saved = [dict(torch='rank0'), dict(torch='rank1')]
    for rank in (0, 1):
        picked = rank_rng_states(saved, rank=rank, world_size=2, checkpoint='iter_3.pth')
        assert picked is saved[rank]


def test_an_old_checkpoint_gives_its_states_to_every_rank():
    old = dict(torch='rank0')  # before per-rank states: rank 0's, one dict
    for rank, world_size in ((0, 1), (1, 2), (3, 8)):
        assert rank_rng_states(old, rank=rank, world_size=world_size, checkpoint='c') is old


@pytest.mark.parametrize('written, now, how', [
    (2, 1, 'tools/dist_train.sh CONFIG 2 --resume'),
    (1, 4, 'tools/train.py CONFIG --resume'),
])
def test_another_world_size_is_refused(written, now, how):
    with pytest.raises(ConfigError) as error:
        rank_rng_states([{}] * written, rank=0, world_size=now, checkpoint='work/iter_3.pth')
    message = str(error.value)
    assert message == (
        f'cannot resume from work/iter_3.pth: it was written by {written} process(es), this '
        f'run has {now}; resume it with {written} ({how}), or start a new run from its '
        'weights (load_from, without --resume)')
    assert '\n' not in message
