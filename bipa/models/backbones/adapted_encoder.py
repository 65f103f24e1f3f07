"""The UA-ViT adapter machinery shared by BiPA's SAM 1 and SAM 2 encoders."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...utils import ConfigError, check_choice
from ..layers import BlockAdapter

GRAD_MODES = ('residual', 'checkpoint', 'exact')
MLP_ADAPTER_INPUTS = ('pre_norm', 'post_norm')


class AdaptedEncoder(BaseModule):
    """A frozen transformer image encoder (``self.encoder``) whose blocks
    ``self.encoder_blocks`` carry trainable :class:`BlockAdapter` s.

    Subclasses give each block's attention branch (:meth:`_attention`:
    the residual shortcut and the attention output); the MLP branch, the
    adapters, the freezing and the gradient modes live here (see
    :class:`SAMViTAdapter` for ``grad_mode`` and ``mlp_adapter_input``).
    ``block_dims[i]`` is the width of block ``i``'s output. The keyword
    arguments are the adapters' (see :class:`SAMViTAdapter`); subclasses pass
    theirs through.
    """

    def __init__(self,
                 encoder: nn.Module,
                 blocks: nn.ModuleList,
                 block_dims: Sequence[int],
                 *,
                 adapter_indices: Optional[Sequence[int]] = None,
                 adapter_ratio: float = 0.25,
                 mlp_adapter_scale: float = 0.5,
                 use_space_adapter: bool = False,
                 mlp_adapter_input: str = 'pre_norm',
                 grad_mode: str = 'residual',
                 adapter_init: str = 'identity',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.encoder = encoder
        depth = len(blocks)
        self.adapter_indices = tuple(
            range(depth // 4, depth, 2) if adapter_indices is None else adapter_indices)
        self.check_block_indices('adapter_indices', self.adapter_indices, depth)
        check_choice(grad_mode, GRAD_MODES, 'model.backbone.grad_mode', ConfigError)
        self.grad_mode = grad_mode
        check_choice(mlp_adapter_input, MLP_ADAPTER_INPUTS, 'model.backbone.mlp_adapter_input',
                     ConfigError)
        self.mlp_adapter_input = mlp_adapter_input
        self.adapters = nn.ModuleDict({
            str(i): BlockAdapter(block_dims[i], ratio=adapter_ratio,
                                 mlp_scale=mlp_adapter_scale, use_space=use_space_adapter,
                                 init=adapter_init)
            for i in self.adapter_indices})
        self._freeze_encoder()

    @staticmethod
    def check_block_indices(name: str, indices: Sequence[int], depth: int) -> None:
        bad = [i for i in indices if not 0 <= i < depth]
        if bad:
            raise ConfigError(f'model.backbone.{name} {bad} out of range for a '
                              f'{depth}-block encoder')

    @property
    def encoder_blocks(self) -> nn.ModuleList:
        raise NotImplementedError

    def _freeze_encoder(self) -> None:
        self.encoder.eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> 'AdaptedEncoder':
        super().train(mode)
        self._freeze_encoder()
        return self

    def frozen_grad(self):
        """Grad mode for the frozen computations of a block: off in
        ``'residual'`` mode (gradients take the residual stream)."""
        return torch.set_grad_enabled(self.grad_mode != 'residual' and torch.is_grad_enabled())

    def _attention(self, block: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(shortcut, attention output)`` of ``block`` for the stream ``x``."""
        raise NotImplementedError

    def _block(self, index: int, x: torch.Tensor) -> torch.Tensor:
        block = self.encoder_blocks[index]
        adapter = self.adapters[str(index)] if str(index) in self.adapters else None
        shortcut, h = self._attention(block, x)
        if adapter is not None:
            h = adapter.attn(h)
        x = shortcut + h
        with self.frozen_grad():
            n = block.norm2(x)
            m = block.mlp(n)
        if adapter is not None:
            m = m + adapter.mlp(x if self.mlp_adapter_input == 'pre_norm' else n)
        return x + m

    def _forward_blocks(self, x: torch.Tensor,
                        out_indices: Sequence[int]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Runs every block on the stream ``x`` ``(B, H, W, C)``; returns the
        last stream and the outputs of ``out_indices`` as ``(B, C, H, W)``."""
        outputs = []
        for i in range(len(self.encoder_blocks)):
            trainable = x.requires_grad or str(i) in self.adapters
            if not (trainable and torch.is_grad_enabled()):
                with torch.no_grad():
                    x = self._block(i, x)
            elif self.grad_mode == 'checkpoint':
                x = checkpoint(self._block, i, x, use_reentrant=False)
            else:
                x = self._block(i, x)
            if i in out_indices:
                outputs.append(x.permute(0, 3, 1, 2))
        return x, outputs
