"""Load an official SAM checkpoint into a BiPA model, with a clear report."""
import os.path as osp
import pickle
from dataclasses import dataclass
from typing import Dict, List, Optional, Set, Tuple

import torch
from mmengine.logging import MMLogger
from torch import nn


@dataclass(frozen=True)
class CheckpointLayout:
    """How an official checkpoint's keys map onto a BiPA model.

    ``key_map``: (checkpoint prefix, BiPA prefix) pairs; ``dense_key``: the
    checkpoint's ``no_mask_embed`` and the dense prompt's base embedding;
    ``unused``: prefixes BiPA has no module for (prompt-encoder parts for
    point and mask prompts, SAM 2's video memory); ``file``: the official
    file's name, for messages.
    """

    key_map: Tuple[Tuple[str, str], ...]
    dense_key: Tuple[str, str]
    unused: Tuple[str, ...]
    file: str
    blocks_prefix: str  # the encoder's blocks, to describe a file
    pos_embed: Tuple[str, int]  # the encoder's position embedding and its channel axis
    wrapper: str  # the official file's top-level key, if any

    def describe(self, state: Dict[str, torch.Tensor]) -> str:
        """The encoder a checkpoint holds, e.g. ``1280-d, 32 blocks``."""
        depth = self.blocks_prefix.count('.')
        blocks = {k.split('.')[depth] for k in state if k.startswith(self.blocks_prefix)}
        pos = state.get(self.pos_embed[0])
        return f'{"?" if pos is None else pos.shape[self.pos_embed[1]]}-d, {len(blocks)} blocks'


_DENSE_DST = 'roi_head.mask_head.dense_prompt.embedding'
SAM_LAYOUT = CheckpointLayout(
    key_map=(
        ('image_encoder.', 'backbone.encoder.'),
        ('prompt_encoder.pe_layer.', 'roi_head.mask_head.pe_layer.'),
        ('mask_decoder.', 'roi_head.mask_head.mask_decoder.'),
        # only with mask_head.anchor='box' (SAM's box-corner embeddings)
        ('prompt_encoder.point_embeddings.', 'roi_head.mask_head.point_embeddings.'),
    ),
    dense_key=('prompt_encoder.no_mask_embed.weight', _DENSE_DST),
    unused=('prompt_encoder.point_embeddings.', 'prompt_encoder.not_a_point_embed.',
            'prompt_encoder.mask_downscaling.'),
    file='sam_vit_h_4b8939.pth', blocks_prefix='image_encoder.blocks.',
    pos_embed=('image_encoder.pos_embed', -1), wrapper='state_dict')
SAM2_LAYOUT = CheckpointLayout(
    key_map=(
        ('image_encoder.', 'backbone.encoder.'),
        ('no_mem_embed', 'backbone.no_mem_embed'),
        ('sam_prompt_encoder.pe_layer.', 'roi_head.mask_head.pe_layer.'),
        ('sam_mask_decoder.', 'roi_head.mask_head.mask_decoder.'),
        # only with mask_head.anchor='box' (the box prompt's corners and padding point)
        ('sam_prompt_encoder.point_embeddings.', 'roi_head.mask_head.point_embeddings.'),
        ('sam_prompt_encoder.not_a_point_embed.', 'roi_head.mask_head.not_a_point_embed.'),
    ),
    dense_key=('sam_prompt_encoder.no_mask_embed.weight', _DENSE_DST),
    unused=('sam_prompt_encoder.point_embeddings.', 'sam_prompt_encoder.not_a_point_embed.',
            'sam_prompt_encoder.mask_downscaling.', 'memory_attention.', 'memory_encoder.',
            'maskmem_tpos_enc', 'no_mem_pos_enc', 'no_obj_ptr', 'obj_ptr_proj.',
            'obj_ptr_tpos_proj.', 'mask_downsample.', 'no_obj_embed_spatial'),
    file='sam2.1_hiera_large.pt', blocks_prefix='image_encoder.trunk.blocks.',
    pos_embed=('image_encoder.trunk.pos_embed', 1), wrapper='model')


def layout_of(model: nn.Module) -> CheckpointLayout:
    """SAM 2.1's layout for a model on :class:`SAM2HieraAdapter`, else SAM's."""
    version = getattr(getattr(model, 'backbone', None), 'sam_version', 1)
    return SAM2_LAYOUT if version == 2 else SAM_LAYOUT


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


def _takes_sam_dense_embedding(model: nn.Module) -> bool:
    """Whether the model's dense prompt starts from SAM's ``no_mask_embed``
    (every base except one learned from scratch)."""
    path = _DENSE_DST.rsplit('.', 1)[0]
    try:
        dense_prompt = model.get_submodule(path)
    except AttributeError:
        return True
    return getattr(dense_prompt, 'base', 'sam') != 'scratch'


def sam_targets(model: nn.Module, state: Optional[Dict[str, torch.Tensor]] = None) -> Set[str]:
    """The names of ``model``'s weights that an official SAM (or SAM 2.1)
    checkpoint supplies (``state``: the model's state dict, when at hand)."""
    state = model.state_dict() if state is None else state
    targets = {k for k in state for _, dst in layout_of(model).key_map if k.startswith(dst)}
    if _takes_sam_dense_embedding(model):
        targets.add(_DENSE_DST)
    return targets


def match_sam_state(model: nn.Module, state: Dict[str, torch.Tensor],
                    layout: CheckpointLayout) -> Tuple[Dict[str, torch.Tensor], Dict[str, List]]:
    """``({model key: tensor}, report)``: where each tensor of an official
    ``state`` goes in ``model``, and the report ``dict(missing=...,
    unexpected=..., mismatched=...)`` of what does not fit (works on the
    meta device: only names and shapes are compared)."""
    own = model.state_dict()
    targets = sam_targets(model, own)
    takes_dense = layout.dense_key[1] in targets
    loaded, unexpected, mismatched, mismatched_dst = {}, [], [], set()
    for key, value in state.items():
        if key == layout.dense_key[0]:
            if not takes_dense:  # a dense prompt learned from scratch
                continue
            dst, value = layout.dense_key[1], value.reshape(-1)
        else:
            dst = next((d + key[len(s):] for s, d in layout.key_map if key.startswith(s)), None)
        unused = key.startswith(layout.unused)
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
    return loaded, report


def load_sam_checkpoint(model: nn.Module, path: str, *, strict: bool = True) -> Dict[str, List]:
    """Copy SAM's encoder, dense positional encoding, ``no_mask_embed`` and mask
    decoder weights from ``path`` (``sam_vit_h_4b8939.pth`` layout; for a
    model on SAM 2.1, ``sam2.1_hiera_*.pt``) into ``model``.

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
    layout = layout_of(model)
    state = read_checkpoint(path, expected=f"SAM's weights ({layout.file} layout)")
    for wrapper in ('state_dict', layout.wrapper):  # mmengine's or the official file's
        if isinstance(state, dict) and wrapper in state:
            state = state[wrapper]
    if not isinstance(state, dict) or not any(k.startswith('image_encoder.') for k in state):
        expected = ', '.join(dict.fromkeys(f"'{src.split('.')[0]}.*'"
                                           for src, _ in layout.key_map if '.' in src))
        raise SAMCheckpointError(f'{path} is not a {layout.file.split("_")[0].upper()} '
                                 f'checkpoint: expected keys {expected} '
                                 '(convert Hugging Face weights with '
                                 'tools/model_converters/hf_sam_to_official.py)')
    loaded, report = match_sam_state(model, state, layout)
    problems = {k: v for k, v in report.items() if v}
    if problems:
        lines = [f'{kind} ({len(keys)}): {", ".join(keys[:8])}{" ..." if len(keys) > 8 else ""}'
                 for kind, keys in problems.items()]
        msg = (f'SAM checkpoint {path} ({layout.describe(state)}) does not match the model:\n  '
               + '\n  '.join(lines))
        if strict:
            raise SAMCheckpointError(
                msg + '\nCheck model.backbone.arch; set model.sam_checkpoint_strict=False '
                'to load the matching keys anyway.')
        MMLogger.get_current_instance().warning(msg)
    own = model.state_dict()
    with torch.no_grad():
        for dst, value in loaded.items():
            own[dst].copy_(value)
    MMLogger.get_current_instance().info(
        f'loaded {len(loaded)} tensors from SAM checkpoint {path}')
    return report
