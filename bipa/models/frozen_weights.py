"""Lean checkpoints: without the frozen weights that the config's files supply.

BiPA freezes SAM's image encoder, prompt encoder and mask decoder (from
``model.sam_checkpoint``) and the ResNet-50 (from
``model.local_backbone.init_cfg.checkpoint``): 2.66 GB of a 3.66 GB ViT-H
training checkpoint are copies of those files. A lean checkpoint leaves them
out and records, under ``meta['frozen_weights']``, for each config key the
file's path, size and fingerprint and the weights it supplied. Loading it
reads them from the config's files again, after checking that those are the
same files; a checkpoint written whole loads as before.
"""
import hashlib
import os
import os.path as osp
from typing import Dict, List, Optional, Set, Tuple

from mmengine.model import is_model_wrapper
from torch import nn

from .sam_checkpoint import SAMCheckpointError

FROZEN_META = 'frozen_weights'
_BLOCKS, _BLOCK = 16, 1 << 16  # the fingerprint reads 16 blocks of 64 KiB
_fingerprints: Dict[Tuple[str, int, int], str] = {}


class FrozenWeightsError(SAMCheckpointError):
    """A lean checkpoint whose frozen weights the config's files cannot supply."""


def file_fingerprint(path: str) -> Dict[str, object]:
    """``dict(size=..., fingerprint=...)``: the file's size and the SHA-256 of
    its size and of 16 blocks of 64 KiB spread evenly over it (the first and
    the last included), so that telling two multi-GB files apart reads 1 MiB."""
    stat = os.stat(path)
    key = (osp.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _fingerprints:
        digest = hashlib.sha256(str(stat.st_size).encode())
        last = max(stat.st_size - _BLOCK, 0)
        with open(path, 'rb') as f:
            for i in range(_BLOCKS):
                f.seek(last * i // (_BLOCKS - 1))
                digest.update(f.read(_BLOCK))
        _fingerprints[key] = digest.hexdigest()[:16]
    return dict(size=stat.st_size, fingerprint=_fingerprints[key])


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def frozen_sources(model: nn.Module) -> Dict[str, Tuple[str, List[str]]]:
    """``{config key: (file, names)}``: the frozen parameters (``requires_grad``
    off) that each file of the config supplies, from the model's
    ``frozen_weight_sources()`` (none for a model without it)."""
    model = _unwrap(model)
    declared = getattr(model, 'frozen_weight_sources', None)
    if declared is None:
        return {}
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    return {key: (path, sorted(names & frozen)) for key, (path, names) in declared().items()}


def make_lean(model: nn.Module, checkpoint: dict) -> None:
    """Drop from ``checkpoint['state_dict']`` (in place) the frozen weights the
    config's files supply, and record those files in its meta."""
    state = checkpoint['state_dict']
    record = {}
    for key, (path, names) in frozen_sources(model).items():
        names = [n for n in names if n in state]
        if not names:
            continue
        for name in names:
            del state[name]
        record[key] = dict(path=osp.abspath(path), names=names, **file_fingerprint(path))
    if record:
        checkpoint.setdefault('meta', {})[FROZEN_META] = record


def lean_record(checkpoint: dict) -> Optional[Dict[str, dict]]:
    """The files a lean checkpoint needs (``None`` for a whole one)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return meta.get(FROZEN_META) if isinstance(meta, dict) else None


def _describe(path: str, size: int, fingerprint: str) -> str:
    return f'{path} ({size} bytes, fingerprint {fingerprint})'


def check_frozen_sources(model: nn.Module, checkpoint: dict, name: str) -> Set[str]:
    """Check that the config's files are the ones a lean ``checkpoint`` (named
    ``name`` in errors) was trained with; returns the names of the weights they
    supply (empty for a whole checkpoint). Raises :class:`FrozenWeightsError`
    naming both files otherwise."""
    record = lean_record(checkpoint)
    if not record:
        return set()
    sources = frozen_sources(model)
    names: Set[str] = set()
    for key, wanted in record.items():
        trained = _describe(wanted['path'], wanted['size'], wanted['fingerprint'])
        path = sources.get(key, (None,))[0]
        if path is None or not osp.isfile(path):
            given = 'nothing' if path is None else f'{path}, which does not exist'
            raise FrozenWeightsError(
                f'{name} leaves out the frozen weights of {key} = {trained}, and the config '
                f'gives {given}: set {key} to that file (or use a self-contained checkpoint, '
                'tools/model_converters/publish_checkpoint.py)')
        given = file_fingerprint(path)
        if (given['size'], given['fingerprint']) != (wanted['size'], wanted['fingerprint']):
            raise FrozenWeightsError(
                f'{name} was trained with {key} = {trained}, but the config gives '
                f'{_describe(path, **given)}, another file: set {key} to the file it was '
                'trained with')
        names.update(wanted['names'])
    return names


def complete_checkpoint(model: nn.Module, checkpoint: dict, name: str) -> bool:
    """Put a lean ``checkpoint``'s frozen weights back into its state dict (in
    place), read from the config's files (loaded into ``model`` first unless
    its weights are initialised already, as in training). Returns whether it
    was lean."""
    names = check_frozen_sources(model, checkpoint, name)
    if not names:
        return False
    model = _unwrap(model)
    if not model.is_init:
        model.load_frozen_weights()
    own = model.state_dict()
    checkpoint['state_dict'].update({n: own[n] for n in names})
    return True
