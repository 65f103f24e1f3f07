"""Let mmengine 0.10.7 load its own checkpoints on torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default, and mmengine
calls ``torch.load`` without the argument. Its checkpoints hold, besides
tensors, the message hub (``HistoryBuffer`` objects, numpy arrays and
scalars, and references to ``HistoryBuffer``'s statistics methods written as
``getattr(HistoryBuffer, 'mean')``). Instead of switching ``weights_only``
off, we allow exactly those objects in torch's restricted unpickler.
"""
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

# numpy dtype classes whose instances hold plain numbers or strings
_NUMPY_DTYPE_CLASSES = [
    getattr(np.dtypes, name) for name in dir(np.dtypes)
    if name.endswith('DType') and name not in ('ObjectDType', 'VoidDType')
]


def _history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods."""
    allowed = {'min', 'max', 'mean', 'current', *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only '
        f'HistoryBuffer statistics methods are allowed')


def register_checkpoint_safe_globals() -> None:
    """Allow the non-tensor objects of mmengine checkpoints in ``torch.load``."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    safe = [np.ndarray, np.dtype, HistoryBuffer, *_NUMPY_DTYPE_CLASSES,
            (_history_buffer_getattr, 'builtins.getattr')]
    # checkpoints written under numpy 1.x name `numpy.core.multiarray.*`
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        safe += [(multiarray._reconstruct, f'{module}._reconstruct'),
                 (multiarray.scalar, f'{module}.scalar')]
    torch.serialization.add_safe_globals(safe)
