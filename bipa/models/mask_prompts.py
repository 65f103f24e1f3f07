from dataclasses import dataclass, field
from typing import Sequence, Tuple

import torch
from torch import Tensor


@dataclass
class MaskPrompts:
    """Everything SAM's mask decoder needs for ``N`` instances of a batch,
    except the dense prompt rho.

    ``image_embeddings``: ``(B, D, h, w)`` from the ViT neck; ``image_pe``:
    ``(1, D, h, w)`` SAM's dense positional encoding of that grid;
    ``tokens``: ``(N, T, D)`` sparse prompts; ``img_inds``: ``(N,)`` the image
    of each instance; ``decoder_features``: per image, the encoder features
    the decoder also reads, already projected (SAM 2's high-resolution
    maps; none for SAM 1). Training, inference and the prompt search all
    decode from this structure (:meth:`BiPA.mask_prompts`).
    """

    image_embeddings: Tensor
    image_pe: Tensor
    tokens: Tensor
    img_inds: Tensor
    decoder_features: Tuple[Tensor, ...] = field(default=())

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @staticmethod
    def cat(parts: Sequence['MaskPrompts']) -> 'MaskPrompts':
        """The prompts of several batches with the same embedding grid as one
        batch (image indices shifted accordingly)."""
        if not parts:
            raise ValueError('MaskPrompts.cat needs at least one part')
        grids = {tuple(p.image_embeddings.shape[-2:]) for p in parts}
        if len(grids) != 1:
            raise ValueError(f'cannot concatenate prompts of embedding grids {sorted(grids)}')
        offsets, img_inds = 0, []
        for p in parts:
            img_inds.append(p.img_inds + offsets)
            offsets += p.image_embeddings.shape[0]
        return MaskPrompts(image_embeddings=torch.cat([p.image_embeddings for p in parts]),
                           image_pe=parts[0].image_pe, tokens=torch.cat([p.tokens for p in parts]),
                           img_inds=torch.cat(img_inds),
                           decoder_features=tuple(
                               torch.cat(level)
                               for level in zip(*(p.decoder_features for p in parts))))
