from typing import Iterable, Optional, Sequence, Tuple

import torch


class PromptedFeatures(tuple):
    """The FPN levels of a BiPA image batch, plus SAM's image embeddings.

    A tuple of the levels, so that mmdet's RPN and RoI extractors take it
    unchanged, which also carries what the SAM mask decoder needs:
    ``image_embeddings`` ``(B, D, h, w)`` from the ViT neck, and
    ``input_size``, the padded input's ``(H, W)`` that box prompts are
    normalised by, and ``decoder_features``, the encoder's other features
    for the decoder (:class:`EncoderOutput`).
    """

    image_embeddings: torch.Tensor
    input_size: Optional[Tuple[int, int]]
    decoder_features: Tuple[torch.Tensor, ...]

    def __new__(cls, levels: Iterable[torch.Tensor], *,
                image_embeddings: Optional[torch.Tensor],
                input_size: Optional[Tuple[int, int]] = None,
                decoder_features: Sequence[torch.Tensor] = ()) -> 'PromptedFeatures':
        obj = super().__new__(cls, levels)
        obj.image_embeddings = image_embeddings
        obj.input_size = None if input_size is None else tuple(int(s) for s in input_size)
        obj.decoder_features = tuple(decoder_features)
        return obj

    def replace_levels(self, levels: Iterable[torch.Tensor]) -> 'PromptedFeatures':
        return PromptedFeatures(levels, image_embeddings=self.image_embeddings,
                                input_size=self.input_size,
                                decoder_features=self.decoder_features)
