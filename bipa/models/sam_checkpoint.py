"""Load an official SAM checkpoint into a BiPA model, with a clear report."""
import os.path as osp
import pickle
from typing import Dict, List, Optional, Set, Tuple

import torch
from mmengine.logging import MMLogger
from torch import nn

# official SAM key prefix -> BiPA module path
SAM_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    ('image_encoder.', 'backbone.encoder.'),
    ('prompt_encoder.pe_layer.', 'roi_head.mask_head.pe_layer.'),
    ('mask_decoder.', 'roi_head.mask_head.mask_decoder.'),
    # only with mask_head.anchor='box' (SAM's box-corner embeddings)
    ('prompt_encoder.point_embeddings.', 'roi_head.mask_head.point_embeddings.'),
)
DENSE_EMBED_KEY = ('prompt_encoder.no_mask_embed.weight',
                   'roi_head.mask_head.dense_prompt.embedding')
# prompt-encoder parts for point/box/mask prompts, which BiPA does not use
SAM_UNUSED_PREFIXES = ('prompt_encoder.point_embeddings.', 'prompt_encoder.not_a_point_embed.',
                       'prompt_encoder.mask_downscaling.')


class SAMCheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match the model."""


def read_checkpoint(path: str, *, expected: str):
    """``torch.load`` (``weights_only``, on the CPU) with an error that names the
    file and what was expected when the file is not a checkpoint torch reads."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False, which is never needed here
        reason = 'not a torch file, truncated, or holding objects other than tensors'
    except (RuntimeError, EOFError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    else:
        return state
    raise SAMCheckpointError(f'{path}: not a checkpoint torch can read ({reason}); '
                             f'expected {expected}')


def _describe_encoder(state: Dict[str, torch.Tensor]) -> str:
    pos = state.get('image_encoder.pos_embed')
    blocks = {k.split('.')[2] for k in state if k.startswith('image_encoder.blocks.')}
    dim = pos.shape[-1] if pos is not None else '?'
    return f'{dim}-d, {len(blocks)} blocks'


def _takes_sam_dense_embedding(model: nn.Module) -> bool:
    """Whether the model's dense prompt starts from SAM's ``no_mask_embed``
    (every base except one learned from scratch)."""
    path = DENSE_EMBED_KEY[1].rsplit('.', 1)[0]
    try:
        dense_prompt = model.get_submodule(path)
    except AttributeError:
        return True
    return getattr(dense_prompt, 'base', 'sam') != 'scratch'


def sam_targets(model: nn.Module, state: Optional[Dict[str, torch.Tensor]] = None) -> Set[str]:
    """The names of ``model``'s weights that an official SAM checkpoint supplies
    (``state``: the model's state dict, when at hand)."""
    state = model.state_dict() if state is None else state
    targets = {k for k in state for _, dst in SAM_KEY_MAP if k.startswith(dst)}
    if _takes_sam_dense_embedding(model):
        targets.add(DENSE_EMBED_KEY[1])
    return targets


def load_sam_checkpoint(model: nn.Module, path: str, *, strict: bool = True) -> Dict[str, List]:
    """Copy SAM's encoder, dense positional encoding, ``no_mask_embed`` and mask
    decoder weights from ``path`` (``sam_vit_h_4b8939.pth`` layout) into ``model``.

    Returns the report ``dict(missing=..., unexpected=..., mismatched=...)``.
    With ``strict`` (the default) any missing, unexpected or mis-shaped key
    raises :class:`SAMCheckpointError` listing them; otherwise they are logged.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'SAM checkpoint not found: {path} (set model.sam_checkpoint to the path of '
            "SAM's weights, e.g. sam_vit_h_4b8939.pth; a SAM arch without released "
            'weights, like the demo\'s tiny one, is pre-trained by '
            'configs/sam_vit-tiny_synthetic.py, which `make demo` runs)')
    state = read_checkpoint(path, expected="SAM's weights (sam_vit_h_4b8939.pth layout)")
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    if not isinstance(state, dict) or not any(k.startswith('image_encoder.') for k in state):
        raise SAMCheckpointError(f'{path} is not a SAM checkpoint: expected keys '
                                 "'image_encoder.*', 'prompt_encoder.*', 'mask_decoder.*' "
                                 '(convert Hugging Face weights with '
                                 'tools/model_converters/hf_sam_to_official.py)')
    own = model.state_dict()
    targets = sam_targets(model, own)
    takes_dense = DENSE_EMBED_KEY[1] in targets
    loaded, unexpected, mismatched, mismatched_dst = {}, [], [], set()
    for key, value in state.items():
        if key == DENSE_EMBED_KEY[0]:
            if not takes_dense:  # a dense prompt learned from scratch
                continue
            dst, value = DENSE_EMBED_KEY[1], value.reshape(-1)
        else:
            dst = next((d + key[len(s):] for s, d in SAM_KEY_MAP if key.startswith(s)), None)
        unused = key.startswith(SAM_UNUSED_PREFIXES)
        if dst is None or (dst not in own and unused):
            if not unused:
                unexpected.append(key)
            continue
        if dst not in own:
            unexpected.append(key)
        elif own[dst].shape != value.shape:
            mismatched.append(f'{key}: checkpoint {tuple(value.shape)} vs model '
                              f'{tuple(own[dst].shape)}')
            mismatched_dst.add(dst)
        else:
            loaded[dst] = value
    missing = sorted(targets - set(loaded) - mismatched_dst)
    report = dict(missing=missing, unexpected=sorted(unexpected), mismatched=mismatched)
    problems = {k: v for k, v in report.items() if v}
    if problems:
        lines = [f'{kind} ({len(keys)}): {", ".join(keys[:8])}{" ..." if len(keys) > 8 else ""}'
                 for kind, keys in problems.items()]
        msg = (f'SAM checkpoint {path} ({_describe_encoder(state)}) does not match the model:\n  '
               + '\n  '.join(lines))
        if strict:
            raise SAMCheckpointError(
                msg + '\nCheck model.backbone.arch; set model.sam_checkpoint_strict=False '
                'to load the matching keys anyway.')
        MMLogger.get_current_instance().warning(msg)
    with torch.no_grad():
        for dst, value in loaded.items():
            own[dst].copy_(value)
    MMLogger.get_current_instance().info(
        f'loaded {len(loaded)} tensors from SAM checkpoint {path}')
    return report
