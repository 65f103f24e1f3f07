"""The upper-level objective f of BiPA: mask BCE on D_val as a function of rho."""
import contextlib
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import get_box_tensor
from mmengine.model import is_model_wrapper
from torch import Tensor, nn

from ..models.mask_prompts import MaskPrompts
from ..utils import ConfigError, get_rng_states, set_rng_states


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


def bce_with_logits_sum(logits: Tensor, targets: Tensor) -> Tensor:
    """``F.binary_cross_entropy_with_logits(logits, targets, reduction='sum')``
    accumulated in float64, about 2.5x faster on CPU.

    ``BCE(x, y) = softplus(x) - x*y`` with ``softplus(x) = max(x, 0) +
    log(1 + exp(-|x|))``: torch's CPU ``log1p`` is not vectorised, ``log`` is.
    Where ``exp(-|x|)`` is below float32's resolution at 1 (``|x| > 16``) the
    term rounds to 0 instead of ~1e-7.
    """
    x = logits.float()
    softplus = x.abs().neg_().exp_().add_(1).log_().add_(x.clamp(min=0))
    return softplus.sum(dtype=torch.float64) - torch.dot(
        x.flatten(), targets.flatten().to(x.dtype)).double()


@dataclass
class CachedBatch:
    """What f needs of one D_val batch that does not depend on rho."""

    prompts: MaskPrompts  # decoder inputs of the GT boxes
    targets: Tensor  # bit-packed GT masks (pack_bits) at the padded input size
    size: Tuple[int, int]  # the padded input size

    @staticmethod
    def merge(batches: List['CachedBatch'], max_instances: int) -> List['CachedBatch']:
        """Concatenate batches of one input size into chunks of up to
        ``max_instances`` instances: one decoder call per chunk per trial."""
        merged, group = [], []

        def flush():
            if group:
                merged.append(CachedBatch(MaskPrompts.cat([b.prompts for b in group]),
                                          torch.cat([b.targets for b in group]), group[0].size))
                group.clear()

        for batch in batches:
            if group and (batch.size != group[0].size or sum(
                    len(b.prompts) for b in group) + len(batch.prompts) > max_instances):
                flush()
            group.append(batch)
        flush()
        return merged


def check_gt_at_input_scale(samples, source: str) -> None:
    """Raise unless every sample's GT masks have the size of its image after the
    pipeline (``img_shape``) and its GT boxes lie inside that image: otherwise
    the GT is at another scale than the model's input (mmdet's test pipelines
    load annotations after ``Resize``, because CocoMetric reads GT from the json)."""
    for sample in samples:
        gt = sample.gt_instances
        if len(gt) == 0:
            continue
        img_h, img_w = sample.metainfo['img_shape'][:2]
        mask_hw = (gt.masks.height, gt.masks.width)
        boxes = get_box_tensor(gt.bboxes)
        outside = bool((boxes[:, 2] > img_w + 1).any() or (boxes[:, 3] > img_h + 1).any())
        if mask_hw != (img_h, img_w) or outside:
            raise ConfigError(
                f'{source}: the ground truth of {sample.metainfo.get("img_path", "an image")} '
                f'is not at the model input scale: image {img_h}x{img_w} after the pipeline, '
                f'GT masks {mask_hw[0]}x{mask_hw[1]}, GT boxes up to '
                f'({float(boxes[:, 2].max()):.0f}, {float(boxes[:, 3].max()):.0f}). '
                'The pipeline must load annotations (LoadAnnotations) before any transform '
                'that changes the image size (Resize, Pad, crops)')


class MaskObjective:
    """f(w) = mean pixel BCE of BiPA's masks on D_val, for group weights w.

    The RoIs are the GT boxes (no proposals, no sampling), the model is in eval
    mode without gradients, and the caller's random generators are left
    untouched, so the same ``w`` always gives the same f. Masks go through the
    model's own mask branch (:meth:`BiPA.mask_prompts`, :meth:`BiPA.mask_logits`),
    and the GT must be at the model's input scale (checked per batch).

    Only SAM's mask decoder depends on rho. With ``cache=True``,
    :meth:`prepare` runs the rest once per round (:class:`CachedBatch`: decoder
    inputs of the GT boxes, GT masks bit-packed) and each call re-runs only the
    decoder; :meth:`free` drops the cache.

    Args:
        model: the BiPA detector (a wrapped model is unwrapped).
        dataloader: D_val, yielding mmdet batches with GT boxes and masks.
        cache: see above.
        autocast_dtype: run under ``torch.autocast`` with this dtype (the
            training AMP dtype), or ``None``.
        chunk_instances: instances per decoder call of a cached trial.
        source: names D_val and its pipeline in error messages.
    """

    def __init__(self, model: nn.Module, dataloader, *, cache: bool = True,
                 autocast_dtype: Optional[torch.dtype] = None,
                 chunk_instances: int = 128, source: str = 'D_val') -> None:
        self.model = model.module if is_model_wrapper(model) else model
        self.dataloader = dataloader
        self.cache = cache
        self.autocast_dtype = autocast_dtype
        self.chunk_instances = chunk_instances
        self.source = source
        self.batches: Optional[List[CachedBatch]] = None

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

    def _batches_of_dataset(self) -> Iterator[CachedBatch]:
        """The batches of D_val that hold instances, GT boxes as RoIs."""
        model = self.model
        for data in self.dataloader:
            data = model.data_preprocessor(data, False)
            inputs, samples = data['inputs'], data['data_samples']
            check_gt_at_input_scale(samples, self.source)
            if sum(len(s.gt_instances) for s in samples) == 0:
                continue
            boxes = [get_box_tensor(s.gt_instances.bboxes) for s in samples]
            size = tuple(inputs.shape[-2:])
            masks = [s.gt_instances.masks.to_tensor(torch.bool, inputs.device) for s in samples]
            masks = torch.cat([F.pad(m, (0, size[1] - m.shape[2], 0, size[0] - m.shape[1]))
                               for m in masks])
            yield CachedBatch(model.mask_prompts(inputs, samples, boxes), pack_bits(masks), size)

    def prepare(self) -> None:
        """Compute what does not depend on rho (with ``cache=True``)."""
        if self.cache and self.batches is None:
            with self._eval_context():
                self.batches = CachedBatch.merge(list(self._batches_of_dataset()),
                                                 self.chunk_instances)
            if not self.batches:
                raise ValueError(f'{self.source} holds no instance: the prompt search has '
                                 'nothing to score (check the split and its annotations)')

    def free(self) -> None:
        self.batches = None

    def __call__(self, weights: Sequence[float]) -> float:
        self.prepare()
        with self._eval_context():
            total, count = torch.zeros((), dtype=torch.float64), 0
            batches = self.batches if self.cache else self._batches_of_dataset()
            for batch in batches:
                logits = self.model.mask_logits(batch.prompts, batch.size, group_weights=weights)
                targets = unpack_bits(batch.targets, batch.size)
                total += bce_with_logits_sum(logits, targets).cpu()
                count += targets.numel()
        if count == 0:
            raise ValueError(f'{self.source} holds no instance: the prompt search has '
                             'nothing to score')
        return float(total / count)
