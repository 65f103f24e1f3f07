"""The upper-level objective f of BiPA: mask BCE on D_val as a function of rho."""
import contextlib
import copy
import io
import logging
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.losses.dice_loss import dice_loss
from mmdet.registry import METRICS
from mmdet.structures.bbox import get_box_tensor
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..models.mask_prompts import MaskPrompts
from ..utils import ConfigError, check_choice, get_rng_states, set_rng_states


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
    term rounds to 0 instead of ~1e-7. Differentiable when ``logits`` requires
    a gradient (the same operations, out of place).
    """
    x = logits.float()
    if x.requires_grad:
        softplus = x.abs().neg().exp().add(1).log().add(x.clamp(min=0))
    else:
        softplus = x.abs().neg_().exp_().add_(1).log_().add_(x.clamp(min=0))
    return softplus.sum(dtype=torch.float64) - torch.dot(
        x.flatten(), targets.flatten().to(x.dtype)).double()


#: f's choices (``train_cfg.search.objective``): the paper's mean pixel BCE;
#: mean per-instance soft Dice loss (mmdet's naive Dice); their sum; mean
#: per-instance soft-IoU loss; 1 - COCO segm mAP with the true boxes as
#: detections (what the oracle-box test measures)
OBJECTIVES = ('bce', 'bce+dice', 'dice', 'soft_iou', 'segm_map')
#: the f that have a gradient with respect to rho
DIFFERENTIABLE = ('bce', 'bce+dice', 'dice', 'soft_iou')
# additive smoothing of the soft Dice and IoU ratios, in pixels
OVERLAP_EPS = 1.0


def objective_terms(logits: Tensor, targets: Tensor, objective: str) -> Dict[str, Tensor]:
    """The float64 sums that f of kind ``objective`` is made of, for one chunk
    of ``(N, H, W)`` logits and 0/1 targets: ``bce`` (summed over pixels),
    ``dice`` and ``soft_iou`` (per-instance losses summed over instances)."""
    terms = {}
    if objective in ('bce', 'bce+dice'):
        terms['bce'] = bce_with_logits_sum(logits, targets)
    if objective != 'bce':
        p = logits.float().sigmoid()
        t = targets.to(p.dtype)
        if objective == 'soft_iou':
            inter = (p * t).sum((1, 2), dtype=torch.float64)
            union = p.sum((1, 2), dtype=torch.float64) + t.sum((1, 2), dtype=torch.float64) - inter
            terms['soft_iou'] = (1 - (inter + OVERLAP_EPS) / (union + OVERLAP_EPS)).sum()
        else:  # 1 - (2|p t| + eps) / (|p| + |t| + eps) per instance
            terms['dice'] = dice_loss(p, t, eps=OVERLAP_EPS, reduction='sum',
                                      naive_dice=True).double()
    return terms


def objective_value(sums: Dict[str, float], pixels: int, instances: int) -> float:
    """f from the sums of :func:`objective_terms` over D_val: BCE per pixel,
    Dice and soft IoU per instance."""
    return sum(v / (pixels if k == 'bce' else instances) for k, v in sums.items())


@dataclass
class CachedBatch:
    """What f needs of one D_val batch that does not depend on rho."""

    prompts: MaskPrompts  # decoder inputs of the GT boxes
    targets: Tensor  # bit-packed GT masks (pack_bits) at the padded input size
    size: Tuple[int, int]  # the padded input size
    # per image: the GT boxes (input pixels) and labels, and the image's meta
    # information (what the segm_map f scores masks with)
    boxes: List[InstanceData] = field(default_factory=list)
    metas: List[dict] = field(default_factory=list)

    @staticmethod
    def merge(batches: List['CachedBatch'], max_instances: int) -> List['CachedBatch']:
        """Concatenate batches of one input size into chunks of up to
        ``max_instances`` instances: one decoder call per chunk per trial."""
        merged, group = [], []

        def flush():
            if group:
                merged.append(CachedBatch(MaskPrompts.cat([b.prompts for b in group]),
                                          torch.cat([b.targets for b in group]), group[0].size,
                                          [d for b in group for d in b.boxes],
                                          [m for b in group for m in b.metas]))
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
    """f(w) = mean pixel BCE of BiPA's masks on D_val, for group weights w
    (``objective='bce'``, the paper's; or another of :data:`OBJECTIVES`).

    ``objective='segm_map'`` is ``1 - segm mAP``: the masks of the true boxes
    as detections (labels the GT's, scores SAM's IoU predictions, masks at
    the original image size: :meth:`BiPA.box_detections`, as
    ``test_cfg.oracle_boxes`` predicts them), scored by mmdet's CocoMetric
    against D_val's annotation file on D_val's images. It has no gradient.

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
        objective: f's kind, one of :data:`OBJECTIVES`.
    """

    def __init__(self, model: nn.Module, dataloader, *, cache: bool = True,
                 autocast_dtype: Optional[torch.dtype] = None,
                 chunk_instances: int = 128, source: str = 'D_val',
                 objective: str = 'bce') -> None:
        self.objective = self._checked(objective)
        self.model = model.module if is_model_wrapper(model) else model
        self.dataloader = dataloader
        self.cache = cache
        self.autocast_dtype = autocast_dtype
        self.chunk_instances = chunk_instances
        self.source = source
        self.batches: Optional[List[CachedBatch]] = None
        self._metric = None  # CocoMetric of f='segm_map', built on first use

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
            yield CachedBatch(model.mask_prompts(inputs, samples, boxes), pack_bits(masks), size,
                              [InstanceData(bboxes=b, labels=s.gt_instances.labels)
                               for b, s in zip(boxes, samples)],
                              [s.metainfo for s in samples])

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

    @staticmethod
    def _checked(objective: str) -> str:
        check_choice(objective, OBJECTIVES, 'train_cfg.search.objective', ConfigError)
        return objective

    def using(self, objective: str) -> 'MaskObjective':
        """The same D_val and cache (shared, not copied) scored by another f."""
        other = copy.copy(self)
        other.objective = self._checked(objective)
        return other

    def __call__(self, weights: Sequence[float]) -> float:
        """f at group weights ``weights``."""
        return self._evaluate(weights, with_grad=False)[0]

    def value_and_grad(self, weights: Sequence[float]) -> Tuple[float, List[float]]:
        """f and its exact gradient with respect to the group weights, w fixed:
        rho enters only the frozen decoder, so autograd through the decoder
        (and the cached inputs) gives df/drho's group weights."""
        return self._evaluate(weights, with_grad=True)

    def _evaluate(self, weights: Sequence[float],
                  with_grad: bool) -> Tuple[float, Optional[List[float]]]:
        self.prepare()
        if self.objective not in DIFFERENTIABLE:
            if with_grad:
                raise ValueError(f'f={self.objective!r} has no gradient')
            return 1.0 - self.segm_map(weights), None
        w = torch.tensor([float(v) for v in weights], dtype=torch.float64,
                         requires_grad=with_grad)
        sums: Dict[str, Tensor] = {}
        grads: Dict[str, Tensor] = {}
        pixels = instances = 0
        with self._eval_context():
            batches = self.batches if self.cache else self._batches_of_dataset()
            for batch in batches:
                with torch.set_grad_enabled(with_grad):
                    logits = self.model.mask_logits(batch.prompts, batch.size, group_weights=w)
                    targets = unpack_bits(batch.targets, batch.size)
                    terms = objective_terms(logits, targets, self.objective)
                for key, term in terms.items():
                    sums[key] = sums.get(key, 0) + term.detach().cpu()
                    if with_grad:
                        # one chunk's graph at a time: memory of one decoder call
                        grad, = torch.autograd.grad(term, w, retain_graph=len(terms) > 1)
                        grads[key] = grads.get(key, 0) + grad
                pixels += targets.numel()
                instances += targets.shape[0]
        if instances == 0:
            raise ValueError(f'{self.source} holds no instance: the prompt search has '
                             'nothing to score')
        value = objective_value({k: float(v) for k, v in sums.items()}, pixels, instances)
        if not with_grad:
            return value, None
        grad = sum(g / (pixels if k == 'bce' else instances) for k, g in grads.items())
        return value, grad.tolist()

    def segm_map(self, weights: Sequence[float]) -> float:
        """COCO segm mAP (0-1) of the masks of the true boxes as detections,
        under the group weights ``weights``; see the class docstring."""
        self.prepare()
        metric = self._coco_metric()
        w = [float(v) for v in weights]
        metric.results.clear()
        with self._eval_context():
            for batch in self.batches if self.cache else self._batches_of_dataset():
                detections = self.model.box_detections(
                    batch.prompts, [d.clone() for d in batch.boxes], batch.metas,
                    group_weights=w)
                metric.process({}, [dict(pred_instances=d, img_id=m['img_id'],
                                         ori_shape=m['ori_shape'])
                                    for d, m in zip(detections, batch.metas)])
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # CocoMetric's tables, at every trial
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' summary
                result = metric.compute_metrics(metric.results)
        finally:
            logger.setLevel(level)
            metric.results.clear()
        return float(result['segm_mAP'])

    def _coco_metric(self):
        """mmdet's CocoMetric for D_val: its annotation file, its images."""
        if self._metric is None:
            dataset = self.dataloader.dataset
            ann_file = getattr(dataset, 'ann_file', None)
            if not ann_file:
                raise ConfigError(f"{self.source}: f='segm_map' needs D_val to be a dataset "
                                  f'with a COCO annotation file (ann_file); '
                                  f'{type(dataset).__name__} has none')
            metric = METRICS.build(dict(type='CocoMetric', metric='segm', ann_file=ann_file))
            metric.dataset_meta = dataset.metainfo
            metric.img_ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
            self._metric = metric
        return self._metric
