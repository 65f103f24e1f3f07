from dataclasses import dataclass, field
from typing import Iterator, List, Tuple

from torch import Tensor


@dataclass
class EncoderOutput:
    """What a BiPA backbone returns: the contract between a SAM image encoder
    and the rest of the model.

    - ``image_embedding`` ``(B, D, h, w)``: what the SAM mask decoder reads.
    - ``levels``: the multi-level features the neck (:class:`FAINeck`) fuses,
      ``levels[v]`` of ``channels[v]`` channels at stride ``strides[v]``
      (the backbone's ``level_channels`` and ``level_strides``).
    - ``decoder_features``: anything else its decoder reads (SAM 2: the
      stride-4 and stride-8 FPN maps of its high-resolution path), as the
      decoder's :meth:`project_features` expects them; empty for SAM 1.

    ``embedding, levels = backbone(x)`` unpacks the first two.
    """

    image_embedding: Tensor
    levels: List[Tensor]
    strides: Tuple[int, ...]
    decoder_features: Tuple[Tensor, ...] = field(default=())

    def __iter__(self) -> Iterator:
        return iter((self.image_embedding, self.levels))
