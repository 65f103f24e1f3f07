"""The upper-level objective f of BiPA: mask BCE on D_val as a function of rho."""
import contextlib
from typing import Iterator, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox2roi, get_box_tensor
from mmengine.model import is_model_wrapper
from torch import Tensor, nn

from ..utils import get_rng_states, set_rng_states


@contextlib.contextmanager
def preserved_rng():
    """Leave the torch (CPU and CUDA), numpy and ``random`` generators as found."""
    states = get_rng_states()
    try:
        yield
    finally:
        set_rng_states(states)


def pack_bits(masks: Tensor) -> Tensor:
    """``(n, H, W)`` bool -> ``(n, ceil(H*W/8))`` uint8, 8x smaller than bool."""
    flat = masks.flatten(1).to(torch.uint8)
    flat = F.pad(flat, (0, -flat.shape[1] % 8)).view(flat.shape[0], -1, 8)
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=masks.device)
    return (flat * weights).sum(-1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, size: Sequence[int]) -> Tensor:
    """Inverse of :func:`pack_bits`: ``(n, H, W)`` float 0/1."""
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.flatten(1)[:, :size[0] * size[1]].view(-1, *size).float()


class MaskObjective:
    """f(w) = mean pixel BCE of BiPA's masks on D_val, for group weights w.

    The RoIs are the GT boxes (no proposals, no sampling), the model is in eval
    mode without gradients, and the caller's random generators are left
    untouched, so the same ``w`` always gives the same f.

    Only SAM's mask decoder depends on rho. With ``cache=True``,
    :meth:`prepare` runs the rest once per round (image embeddings, sparse
    tokens of the GT boxes, GT masks bit-packed) and each call re-runs only the
    decoder; :meth:`free` drops the cache.

    Args:
        model: the BiPA detector (a wrapped model is unwrapped).
        dataloader: D_val, yielding mmdet batches with GT boxes and masks.
        cache: see above.
        autocast_dtype: run under ``torch.autocast`` with this dtype (the
            training AMP dtype), or ``None``.
        chunk_instances: instances per decoder call of a cached trial.
    """

    def __init__(self, model: nn.Module, dataloader, *, cache: bool = True,
                 autocast_dtype: Optional[torch.dtype] = None,
                 chunk_instances: int = 128) -> None:
        self.model = model.module if is_model_wrapper(model) else model
        self.dataloader = dataloader
        self.cache = cache
        self.autocast_dtype = autocast_dtype
        self.chunk_instances = chunk_instances
        self._items: Optional[List[tuple]] = None

    @contextlib.contextmanager
    def _eval_context(self):
        was_training = self.model.training
        device = next(self.model.parameters()).device
        self.model.eval()
        try:
            with preserved_rng(), torch.no_grad(), torch.autocast(
                    device.type, dtype=self.autocast_dtype or torch.float32,
                    enabled=self.autocast_dtype is not None):
                yield
        finally:
            self.model.train(was_training)

    def _items_of_dataset(self) -> Iterator[tuple]:
        """Per batch with instances: (embeddings, image index and sparse tokens
        of each GT instance, its bit-packed GT mask, the padded input size)."""
        model = self.model
        roi_head = model.roi_head
        for data in self.dataloader:
            data = model.data_preprocessor(data, False)
            inputs, samples = data['inputs'], data['data_samples']
            feats = roi_head.add_positional_encoding(model.extract_feat(inputs), samples)
            rois = bbox2roi([get_box_tensor(s.gt_instances.bboxes) for s in samples])
            if rois.shape[0] == 0:
                continue
            extractor = roi_head.mask_roi_extractor
            tokens = roi_head.mask_head.prompt_generator(
                extractor(feats[:extractor.num_inputs], rois))
            size = tuple(inputs.shape[-2:])
            masks = [s.gt_instances.masks.to_tensor(torch.bool, inputs.device) for s in samples]
            masks = torch.cat([F.pad(m, (0, size[1] - m.shape[2], 0, size[0] - m.shape[1]))
                               for m in masks])
            yield (feats.image_embeddings, rois[:, 0].long(), tokens, pack_bits(masks), size)

    @staticmethod
    def _merge(items: List[tuple], max_instances: int) -> List[tuple]:
        """Concatenate cached batches of one input size into chunks of up to
        ``max_instances`` instances: one decoder call per chunk per trial."""
        merged, group = [], []

        def flush():
            if group:
                offsets = torch.tensor([0] + [g[0].shape[0] for g in group]).cumsum(0)
                merged.append((torch.cat([g[0] for g in group]),
                               torch.cat([g[1] + offsets[i] for i, g in enumerate(group)]),
                               torch.cat([g[2] for g in group]),
                               torch.cat([g[3] for g in group]), group[0][4]))
                group.clear()

        for item in items:
            if group and (item[4] != group[0][4] or sum(
                    g[2].shape[0] for g in group) + item[2].shape[0] > max_instances):
                flush()
            group.append(item)
        flush()
        return merged

    def prepare(self) -> None:
        """Compute what does not depend on rho (with ``cache=True``)."""
        if self.cache and self._items is None:
            with self._eval_context():
                self._items = self._merge(list(self._items_of_dataset()), self.chunk_instances)
            if not self._items:
                raise ValueError('D_val holds no instance: the prompt search has nothing '
                                 'to score (check the holdout split and its annotations)')

    def free(self) -> None:
        self._items = None

    def __call__(self, weights: Sequence[float]) -> float:
        self.prepare()
        mask_head = self.model.roi_head.mask_head
        with self._eval_context():
            rho = mask_head.dense_prompt.prompt_for(weights)
            total, count = torch.zeros((), dtype=torch.float64), 0
            items = self._items if self.cache else self._items_of_dataset()
            for embeddings, img_inds, tokens, packed, size in items:
                logits = mask_head.decode(embeddings, tokens, img_inds, dense_prompt=rho)
                logits = F.interpolate(logits.float(), size=size, mode='bilinear',
                                       align_corners=False).squeeze(1)
                targets = unpack_bits(packed, size)
                bce = F.binary_cross_entropy_with_logits(logits, targets, reduction='sum')
                total += bce.double().cpu()
                count += targets.numel()
        if count == 0:
            raise ValueError('D_val holds no instance: the prompt search has nothing to score')
        return float(total / count)
