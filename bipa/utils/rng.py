import random

import numpy as np
import torch


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
