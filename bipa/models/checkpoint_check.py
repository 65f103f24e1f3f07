"""Refuse a checkpoint whose weights do not fit the model before it is used."""
import warnings
from typing import Dict, List

from mmengine.model import is_model_wrapper
from torch import nn

from ..utils import examples
from .frozen_weights import check_frozen_sources
from .sam_checkpoint import SAMCheckpointError, read_checkpoint


def check_checkpoint_fits(model: nn.Module, path: str, *,
                          allow_partial: bool = False) -> Dict[str, List[str]]:
    """Compare the keys and shapes of the checkpoint ``path`` (an mmengine
    checkpoint or a plain state dict) with ``model``'s.

    mmengine's loader only warns about missing and unexpected keys, so a wrong
    file (e.g. SAM's weights given as the BiPA checkpoint) evaluates a
    half-initialised model to mAP 0. The frozen weights a lean checkpoint
    leaves out count as present once the config's files are checked to be
    the ones it was trained with (:func:`check_frozen_sources`). Raises
    :class:`SAMCheckpointError` with the counts, unless ``allow_partial``
    (then it warns). Returns the report.
    """
    state = read_checkpoint(path, expected='a BiPA checkpoint saved by tools/train.py')
    weights = state.get('state_dict', state) if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise SAMCheckpointError(f'{path}: holds no state dict; expected a BiPA checkpoint '
                                 'saved by tools/train.py')
    own = (model.module if is_model_wrapper(model) else model).state_dict()
    # a lean checkpoint: the config's files supply its frozen weights (checked here)
    supplied = check_frozen_sources(model, state, path)
    report = dict(
        missing=sorted(set(own) - set(weights) - supplied),
        unexpected=sorted(set(weights) - set(own)),
        mismatched=sorted(k for k in set(own) & set(weights)
                          if tuple(own[k].shape) != tuple(getattr(weights[k], 'shape', ()))))
    if any(report.values()):
        counts = ', '.join(f'{len(v)} {k} (e.g. {examples(v, limit=3)})'
                           for k, v in report.items() if v)
        hint = (" It holds SAM's own keys: give SAM's weights as model.sam_checkpoint and "
                'train.' if any(k.startswith('image_encoder.') for k in weights) else '')
        msg = f'{path} does not fit the model: {counts} keys.{hint}'
        if not allow_partial:
            raise SAMCheckpointError(msg + ' Pass --allow-partial to load the matching keys '
                                     'anyway.')
        warnings.warn(msg)
    return report
