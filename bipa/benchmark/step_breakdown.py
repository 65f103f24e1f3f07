"""A BiPA train step split by module: forward and backward time of the
encoder, adapters, ResNet, FAI neck, RPN, RoI box and mask branches and the
optimizer, the rows adding up to the step with ``other``."""
import copy
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

# (row, label): the rows of the breakdown, additive: a nested region's time is
# not in its parent's row
BREAKDOWN_ROWS = (
    ('data_preprocessor', 'data preprocessor'),
    ('backbone', 'SAM ViT blocks (frozen)'),
    ('backbone.adapters', 'adapters (UA-ViT) [a]'),
    ('local_backbone', 'local branch: ResNet'),
    ('neck.local_branches', 'FAI neck: local branches (EMA)'),
    ('neck', 'FAI neck: the rest, FPN [b]'),
    ('rpn_head', 'RPN head (loss, proposals)'),
    ('roi_head', 'RoI head: sampling, PE [c]'),
    ('roi_head.bbox', 'RoI head: box branch'),
    ('roi_head.mask', 'RoI head: mask branch (SAM)'),
    ('backward', 'backward, rest'),
    ('optimizer', 'optimizer step, zero_grad'),
)
BREAKDOWN_NOTES = ('[a] backward: the whole backbone\'s (adapters, residual stream)',
                   '[b] backward: the whole neck\'s', '[c] backward: RoIAlign, both branches')


class Clock:
    """Time stamps inside a step. On CUDA, events on the current stream, read
    after one synchronisation at the end of the step (so the step runs as it
    would, without a synchronisation per mark); on CPU ``perf_counter``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == 'cuda'

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start, end) -> float:
        return start.elapsed_time(end) / 1e3 if self.cuda else end - start


def split_step(intervals: Sequence[Sequence], grad_marks: Dict[str, list],
               seconds: Callable[[object, object], float], step_start,
               step_end) -> Dict[str, object]:
    """Forward and backward seconds per row of one step, and ``other``.

    ``intervals``: ``[row, start, end, parent index]`` of each timed call, a
    nested call's time taken out of its parent's. ``grad_marks``: per row, the
    marks at which its gradients arrived; each ``backward`` interval is cut at
    the last mark of each row, in time order, its rest staying ``backward``.
    """
    inclusive = [seconds(start, end) for _, start, end, _ in intervals]
    exclusive = list(inclusive)
    for i, (_, _, _, parent) in enumerate(intervals):
        if parent is not None:
            exclusive[parent] -= inclusive[i]
    forward = {name: 0.0 for name, _ in BREAKDOWN_ROWS}
    backward = {name: 0.0 for name, _ in BREAKDOWN_ROWS}
    windows = []
    for (name, start, end, _), excl in zip(intervals, exclusive):
        if name == 'backward':
            windows.append((start, end))
            backward['backward'] += excl
        else:
            forward[name] += excl
    for start, end in windows:
        ends = sorted((max(seconds(start, m) for m in marks), name)
                      for name, marks in grad_marks.items() if marks)
        last = 0.0
        for t, name in ends:
            backward[name] += t - last
            last = t
        backward['backward'] -= last
    step = seconds(step_start, step_end)
    total = sum(forward.values()) + sum(backward.values())
    return dict(step_s=step, forward=forward, backward=backward, other_s=step - total)


class StepBreakdown:
    """Times the regions of a BiPA train step while in its ``with`` block.

    Forward: the modules' ``forward`` (or ``loss_and_predict``, ``loss``,
    ``bbox_loss``, ``mask_loss``; the adapters' ``attn``/``mlp``) are wrapped
    on the instances; a nested region's time is taken out of its parent's.
    Backward (the wrapper's ``backward``): autograd runs it in roughly the
    reverse order of the forward, so it is cut where each module's last
    trainable parameter gets its gradient (post-accumulate-grad hooks), and
    where the gradient of the RoI extractors' input levels is complete: the
    mask branch's segment ends with its last gradient, the box branch's
    starts there, and so on. The backbone's backward (only the adapters
    train) is in the adapters' row, the FAI local branches' in the neck's; a
    module without trainable parameters has none. The optimizer row is the
    wrapper's ``step`` and ``zero_grad``; ``other`` is the rest of the step
    (loss parsing, the detector's glue).
    """

    def __init__(self, model, wrapper, clock: Clock) -> None:
        self.clock = clock
        roi = model.roi_head
        self.regions = [('data_preprocessor', model.data_preprocessor, 'forward'),
                        ('backbone', model.backbone, 'forward'),
                        ('local_backbone', model.local_backbone, 'forward'),
                        ('neck', model.neck, 'forward'),
                        ('rpn_head', model.rpn_head, 'loss_and_predict'),
                        ('roi_head', roi, 'loss'),
                        ('roi_head.bbox', roi, 'bbox_loss'),
                        ('roi_head.mask', roi, 'mask_loss'),
                        ('backward', wrapper, 'backward'),
                        ('optimizer', wrapper, 'step'),
                        ('optimizer', wrapper, 'zero_grad')]
        for adapter in getattr(model.backbone, 'adapters', {}).values():
            self.regions += [('backbone.adapters', adapter, 'attn'),
                             ('backbone.adapters', adapter, 'mlp')]
        for branch in getattr(model.neck, 'local_branches', ()):
            self.regions.append(('neck.local_branches', branch, 'forward'))
        owners = {'backbone.adapters': [model.backbone], 'local_backbone': [model.local_backbone],
                  'neck': [model.neck], 'rpn_head': [model.rpn_head],
                  'roi_head.bbox': [roi.bbox_roi_extractor, roi.bbox_head],
                  'roi_head.mask': [roi.mask_roi_extractor, roi.mask_head]}
        self.owner_params = {name: [p for m in mods for p in m.parameters() if p.requires_grad]
                             for name, mods in owners.items()}
        owned = {id(p) for ps in self.owner_params.values() for p in ps}
        self.unowned = sum(1 for p in model.parameters() if p.requires_grad and id(p) not in owned)
        self.extractors = [roi.bbox_roi_extractor, roi.mask_roi_extractor]
        self._restore: List[Tuple[object, str, bool, object]] = []
        self._handles: list = []
        self.reset()

    def reset(self) -> None:
        """Forget the marks of the previous step."""
        self.intervals: List[list] = []  # [row, start, end, parent index]
        self.grad_marks: Dict[str, list] = {name: [] for name in (*self.owner_params,
                                                                  'roi_head')}
        self._stack: List[int] = []
        self._levels: set = set()

    def _level_grad_marks(self, module, args) -> None:
        """A mark when the gradient of each input level of the RoI extractors
        is complete (both extractors pool the same levels)."""
        if not torch.is_grad_enabled():
            return
        for feat in args[0]:
            if feat.requires_grad and id(feat) not in self._levels:
                self._levels.add(id(feat))
                feat.register_hook(lambda grad: self.grad_marks['roi_head'].append(
                    self.clock.mark()))

    def _wrap(self, name: str, obj, attr: str) -> None:
        original = getattr(obj, attr)

        def timed(*args, **kwargs):
            parent = self._stack[-1] if self._stack else None
            self.intervals.append([name, self.clock.mark(), None, parent])
            self._stack.append(len(self.intervals) - 1)
            try:
                return original(*args, **kwargs)
            finally:
                self.intervals[self._stack.pop()][2] = self.clock.mark()
        self._restore.append((obj, attr, attr in vars(obj), original))
        object.__setattr__(obj, attr, timed)

    def __enter__(self) -> 'StepBreakdown':
        for name, obj, attr in self.regions:
            self._wrap(name, obj, attr)
        for name, params in self.owner_params.items():

            def hook(param, name=name):
                self.grad_marks[name].append(self.clock.mark())
            self._handles += [p.register_post_accumulate_grad_hook(hook) for p in params]
        self._handles += [m.register_forward_pre_hook(self._level_grad_marks)
                          for m in self.extractors]
        return self

    def __exit__(self, *exc) -> None:
        for obj, attr, had, original in reversed(self._restore):
            if had:
                object.__setattr__(obj, attr, original)
            else:
                object.__delattr__(obj, attr)
        self._restore.clear()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def read(self, step_start, step_end) -> Dict[str, object]:
        """:func:`split_step` of the step just run (after a synchronisation
        on CUDA)."""
        return split_step(self.intervals, self.grad_marks, self.clock.seconds, step_start,
                          step_end)


def measure_breakdown(model, wrapper, batch: dict, steps: int,
                      device: Optional[torch.device] = None) -> dict:
    """Mean forward and backward time per row over ``steps`` instrumented
    train steps (after one untimed), with ``other`` the rest of the step."""
    model.train()
    clock = Clock(device or next(model.parameters()).device)
    records = []
    with StepBreakdown(model, wrapper, clock) as breakdown:
        for i in range(steps + 1):
            data = copy.deepcopy(batch)  # a fresh batch per step, as a dataloader gives
            breakdown.reset()
            clock.sync()
            start = clock.mark()
            model.train_step(data, wrapper)
            end = clock.mark()
            clock.sync()
            if i:
                records.append(breakdown.read(start, end))
    rows = []
    for name, label in BREAKDOWN_ROWS:
        fwd = statistics.fmean(r['forward'][name] for r in records)
        bwd = statistics.fmean(r['backward'][name] for r in records)
        rows.append(dict(name=name, label=label, forward_s=fwd, backward_s=bwd,
                         total_s=fwd + bwd))
    return dict(steps=steps, step_s=statistics.fmean(r['step_s'] for r in records),
                other_s=statistics.fmean(r['other_s'] for r in records), rows=rows,
                clock='cuda events' if clock.cuda else 'perf_counter',
                unowned_trainable_params=breakdown.unowned)


def format_breakdown(b: dict) -> str:
    """:func:`measure_breakdown`'s result as a table, with its notes."""
    head = (f"train step by module: mean of {b['steps']} instrumented steps, "
            f"{b['step_s'] * 1e3:.1f} ms ({b['clock']})")
    lines = [head, f"  {'':32s} {'fwd ms':>8s} {'bwd ms':>8s} {'total ms':>9s} {'share':>6s}"]
    step = b['step_s']
    for r in b['rows'] + [dict(label='other', forward_s=b['other_s'], backward_s=0.0,
                               total_s=b['other_s'])]:
        bwd = f"{r['backward_s'] * 1e3:8.1f}" if r['backward_s'] else f"{'-':>8s}"
        lines.append(f"  {r['label']:32s} {r['forward_s'] * 1e3:8.1f} {bwd} "
                     f"{r['total_s'] * 1e3:9.1f} {r['total_s'] / step:6.1%}")
    return '\n'.join(lines + [f'  {note}' for note in BREAKDOWN_NOTES])
