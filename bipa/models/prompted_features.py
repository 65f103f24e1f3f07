from typing import Iterable, Optional

import torch


class PromptedFeatures(tuple):
    """The FPN levels of a BiPA image batch, plus SAM's image embeddings.

    A tuple of the levels, so that mmdet's RPN and RoI extractors take it
    unchanged, which also carries what the SAM mask decoder needs:
    ``image_embeddings`` ``(B, D, h, w)`` from the ViT neck.
    """

    image_embeddings: torch.Tensor

    def __new__(cls, levels: Iterable[torch.Tensor], *,
                image_embeddings: Optional[torch.Tensor]) -> 'PromptedFeatures':
        obj = super().__new__(cls, levels)
        obj.image_embeddings = image_embeddings
        return obj

    def replace_levels(self, levels: Iterable[torch.Tensor]) -> 'PromptedFeatures':
        return PromptedFeatures(levels, image_embeddings=self.image_embeddings)
