"""The dense prompt rho of BiPA: a grouped, re-weighted SAM dense embedding."""
from typing import Sequence, Tuple

import torch
from mmdet.registry import MODELS
from torch import nn

from ...utils import ConfigError, check_choice

DENSE_PROMPT_MODES = ('frozen', 'naive', 'bilevel')
DENSE_PROMPT_BASES = ('sam', 'learned', 'scratch')
SCRATCH_INITS = ('zeros', 'normal')


def check_interval(interval: Sequence[float], key: str) -> Tuple[float, float]:
    """The search interval ``B = [low, high]`` as floats; ``key`` names it in
    the error when it is empty."""
    low, high = (float(v) for v in interval)
    if not low < high:
        raise ConfigError(f'{key} B=[{low}, {high}] needs low < high')
    return low, high


@MODELS.register_module()
class DensePrompt(nn.Module):
    """``rho = e * repeat(w, D / N_g)``: a ``D``-dim base embedding ``e`` (SAM's
    ``no_mask_embed`` once a SAM checkpoint is loaded) whose ``N_g`` channel
    groups are scaled by the group weights ``w`` (paper Sec. 3.3). The decoder
    adds ``rho`` at every position of the image embedding.

    ``mode``:
      - ``'frozen'``: nothing trains, ``w = 1`` (USIS-SAM's fixed prompt);
      - ``'naive'``: ``e`` trains by gradient jointly with the weights;
      - ``'bilevel'``: ``w`` is set from outside by the upper-level search
        (:meth:`set_group_weights`) within ``search_interval`` ``B``.

    ``base`` (bilevel mode): ``'sam'`` keeps ``e`` = SAM's ``no_mask_embed``
    fixed (the authors' code); ``'learned'`` trains ``e`` by gradient with the
    lower level during the adaptation phase (``w`` fixed at the current
    search result, so the gradient reaches ``e`` scaled by ``w``), starting
    from ``no_mask_embed`` when a SAM checkpoint is loaded; ``'scratch'``
    trains it the same way from ``scratch_init`` (``'zeros'`` or
    ``'normal'``, N(0, 1)), ignoring SAM's ``no_mask_embed``: the paper's
    "learns a 256-dimensional dense prompt embedding from scratch". The
    fine-tuning phase freezes it (:meth:`freeze`) with rho*.

    ``w`` is a buffer, so it is saved in and restored from checkpoints.
    """

    def __init__(self, *, embed_dim: int = 256, num_groups: int = 16,
                 mode: str = 'bilevel',
                 search_interval: Sequence[float] = (1.0, 3.0),
                 base: str = 'sam',
                 scratch_init: str = 'zeros') -> None:
        super().__init__()
        key = 'model.roi_head.mask_head.dense_prompt'
        check_choice(mode, DENSE_PROMPT_MODES, f'{key}.mode', ConfigError)
        check_choice(base, DENSE_PROMPT_BASES, f'{key}.base', ConfigError)
        check_choice(scratch_init, SCRATCH_INITS, f'{key}.scratch_init', ConfigError)
        if base != 'sam' and mode != 'bilevel':
            raise ConfigError(f"{key}.base: base={base!r} applies to mode 'bilevel' (mode "
                              f"{mode!r} {'trains' if mode == 'naive' else 'freezes'} the "
                              'embedding already)')
        if num_groups <= 0 or embed_dim % num_groups:
            raise ConfigError(f'{key}.num_groups (N_g={num_groups}) must divide the prompt '
                              f'dimension {embed_dim}')
        self.mode = mode
        self.base = base
        self.num_groups = num_groups
        self.search_interval = check_interval(search_interval, f'{key}.search_interval')
        # N(0, 1) like SAM's nn.Embedding; replaced by no_mask_embed from a SAM checkpoint
        trains = mode == 'naive' or base != 'sam'
        init = (torch.zeros(embed_dim) if base == 'scratch' and scratch_init == 'zeros'
                else torch.randn(embed_dim))
        self.embedding = nn.Parameter(init, requires_grad=trains)
        self.register_buffer('group_weights', torch.ones(num_groups))

    def forward(self) -> torch.Tensor:
        """The current ``(D,)`` dense prompt."""
        return self.prompt_for(self.group_weights)

    def prompt_for(self, weights: torch.Tensor) -> torch.Tensor:
        """The ``(D,)`` dense prompt that group weights ``weights`` would give."""
        group = self.embedding.numel() // self.num_groups
        weights = torch.as_tensor(weights, dtype=self.embedding.dtype,
                                  device=self.embedding.device)
        return self.embedding * weights.repeat_interleave(group)

    def freeze(self) -> None:
        """Stop training ``e`` (rho* is frozen for fine-tuning)."""
        self.embedding.requires_grad_(False)

    def get_group_weights(self) -> torch.Tensor:
        return self.group_weights.detach().clone()

    def set_group_weights(self, weights: Sequence[float]) -> None:
        """Set ``w`` (bilevel mode only); each weight must lie in ``B``."""
        if self.mode != 'bilevel':
            raise RuntimeError(f"group weights are searched only in 'bilevel' mode, "
                               f'this dense prompt is {self.mode!r}')
        w = torch.as_tensor(weights, dtype=self.group_weights.dtype).flatten()
        if w.numel() != self.num_groups:
            raise ValueError(f'expected {self.num_groups} group weights, got {w.numel()}')
        low, high = self.search_interval
        if not torch.all((w >= low) & (w <= high)):
            raise ValueError(f'group weights {w.tolist()} leave the interval B=[{low}, {high}]')
        self.group_weights.copy_(w.to(self.group_weights.device))

    def extra_repr(self) -> str:
        return (f'mode={self.mode}, base={self.base}, num_groups={self.num_groups}, '
                f'search_interval={self.search_interval}')
