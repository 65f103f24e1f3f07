"""BiPA's alternating training loop (paper Sec. 3.3, two-stage strategy)."""
import copy
import os.path as osp
from typing import List, Optional, Union

import torch
from mmdet.registry import DATASETS, LOOPS
from mmengine.dist import broadcast, is_main_process
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper
from mmengine.runner import IterBasedTrainLoop
from torch.utils.data import DataLoader

from ..models.layers.dense_prompt import DENSE_PROMPT_MODES
from ..utils import get_rng_states, lock_work_dir, set_rng_states
from .prompt_objective import MaskObjective
from .prompt_search import PromptSearch

UNITS = ('iter', 'epoch')


class _LoopStateHook(Hook):
    """Saves the loop's state (and the RNG states) in every checkpoint and hands
    a loaded one back to the loop."""

    priority = 'VERY_LOW'

    def __init__(self, loop: 'BilevelLoop') -> None:
        self.loop = loop

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['bilevel_loop'] = self.loop.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.loop.loaded_state = checkpoint.get('bilevel_loop')


@LOOPS.register_module()
class BilevelLoop(IterBasedTrainLoop):
    """Alternate lower-level training and upper-level prompt search.

    1. Adaptation phase, ``T`` rounds: train the weights w for ``K_a`` units on
       D_tr with the dense prompt rho fixed; then, w fixed, run ``K_b`` Optuna
       trials over rho's ``N_g`` group weights in ``B`` scored by f on D_val;
       set rho to the best and carry w into the next round.
    2. Fine-tuning phase: rho* frozen, train w for ``K_c`` units on D_tr
       (skipped with ``adaptation_only``, paper Table 4).

    ``unit`` is ``'iter'`` or ``'epoch'`` (one epoch = one pass over D_tr);
    internally the loop counts iterations like ``IterBasedTrainLoop`` and
    calls the same hooks, so ``val_interval`` and checkpoint intervals are in
    iterations. ``strategy`` (paper Table 3) must match the model's dense
    prompt mode: ``'bilevel'`` searches, ``'frozen'`` and ``'naive'`` train
    ``T * K_a + K_c`` units straight through.

    D_val is held out of the training dataset by ``holdout``
    (``dict(fraction=..., seed=...)`` or ``dict(count=..., seed=...)``) and
    removed from D_tr for every strategy, so ablations train on the same data.
    ``search`` configures the upper level: ``pipeline`` (a deterministic test
    pipeline that loads GT boxes and masks), ``batch_size``, ``num_workers``,
    ``sampler`` (``'tpe'``/``'gp'``), ``seed``, ``storage`` (default SQLite
    ``prompt_search.db`` in the work dir), ``study_name`` and ``cache``.
    """

    def __init__(self, runner, dataloader: Union[dict, DataLoader], *,
                 T: int = 3, K_a: int = 30, K_b: int = 21, K_c: int = 7,
                 unit: str = 'epoch', strategy: str = 'bilevel',
                 adaptation_only: bool = False,
                 holdout: Optional[dict] = dict(fraction=0.1, seed=0),
                 search: Optional[dict] = None,
                 val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals: Optional[List] = None) -> None:
        if unit not in UNITS:
            raise ValueError(f'train_cfg.unit must be one of {UNITS}, got {unit!r}')
        if strategy not in DENSE_PROMPT_MODES:
            raise ValueError(f'train_cfg.strategy must be one of {DENSE_PROMPT_MODES}, '
                             f'got {strategy!r}')
        for name, value in dict(T=T, K_a=K_a, K_b=K_b, K_c=K_c).items():
            if not isinstance(value, int) or value < 0 or (name in ('T', 'K_a') and value == 0):
                kind = 'positive' if name in ('T', 'K_a') else 'non-negative'
                raise ValueError(f'train_cfg.{name} must be a {kind} integer, got {value!r}')
        if strategy == 'bilevel' and K_b == 0:
            raise ValueError("train_cfg.K_b must be positive for strategy 'bilevel'")
        self.T, self.K_a, self.K_b, self.K_c = T, K_a, K_b, K_c
        self.unit, self.strategy, self.adaptation_only = unit, strategy, adaptation_only
        self.holdout = holdout
        self.search_cfg = dict(search or {})
        self.rounds_done = 0
        self.loaded_state: Optional[dict] = None

        if isinstance(dataloader, dict) and holdout is not None:
            pipeline = self.search_cfg.get('pipeline')
            self._search_source = ('D_val (pipeline train_cfg.search.pipeline)' if pipeline else
                                   'D_val (pipeline of val_dataloader, annotations loaded '
                                   'before resizing)')
            pipeline = pipeline or self._default_search_pipeline(runner)
            self._val_dataset_cfg = dict(
                type='HoldoutSplit', part='holdout', **holdout,
                dataset=dict(copy.deepcopy(dataloader['dataset']), pipeline=pipeline))
            dataloader = copy.deepcopy(dataloader)
            dataloader['dataset'] = dict(type='HoldoutSplit', part='train', **holdout,
                                         dataset=dataloader['dataset'])
        elif strategy == 'bilevel':
            raise ValueError("strategy 'bilevel' needs train_cfg.holdout (D_val is held out "
                             'of the training annotations) and a dataloader config')
        else:
            self._val_dataset_cfg = None
        super().__init__(runner, dataloader, max_iters=1, val_begin=val_begin,
                         val_interval=val_interval, dynamic_intervals=dynamic_intervals)
        self.iters_per_unit = len(self.dataloader) if unit == 'epoch' else 1
        self.round_iters = K_a * self.iters_per_unit
        self.adaptation_iters = T * self.round_iters
        finetune = 0 if adaptation_only else K_c * self.iters_per_unit
        self._max_iters = self.adaptation_iters + finetune
        self._check_model()
        runner.register_hook(_LoopStateHook(self))
        runner.logger.info(
            f'BilevelLoop: strategy={strategy}, T={T}, K_a={K_a}, K_b={K_b}, K_c={K_c} '
            f'({unit}s; 1 {unit} = {self.iters_per_unit} iterations), '
            f'{self._max_iters} iterations, D_tr has {len(self.dataloader.dataset)} images'
            + ('' if self._val_dataset_cfg is None else ', D_val held out: '
               f'{holdout}') + (', adaptation only' if adaptation_only else ''))

    # --- helpers --------------------------------------------------------------

    @staticmethod
    def _default_search_pipeline(runner) -> list:
        """D_val's pipeline: the validation (or test) pipeline with its
        ``LoadAnnotations`` moved right after the image is loaded, so that every
        later transform (``Resize``, ``Pad``) scales the GT boxes and masks with
        the image. (mmdet's test pipelines load annotations after ``Resize``:
        CocoMetric reads GT from the json, at the original scale.)"""
        for key in ('val_dataloader', 'test_dataloader'):
            loader = runner.cfg.get(key)
            if loader:
                break
        pipeline = copy.deepcopy(loader['dataset'].get('pipeline') or []) if loader else []
        def image_loader():
            return next((i for i, t in enumerate(pipeline)
                         if 'LoadImage' in str(t.get('type'))), None)

        loads = [i for i, t in enumerate(pipeline) if t.get('type') == 'LoadAnnotations'
                 and t.get('with_bbox', True) and t.get('with_mask')]
        if not loads or image_loader() is None:
            raise ValueError('the prompt search reads D_val with the pipeline of '
                             'val_dataloader (or test_dataloader), which must load the image '
                             'and LoadAnnotations(with_bbox=True, with_mask=True); or set '
                             'train_cfg.search.pipeline')
        annotations = pipeline.pop(loads[0])
        pipeline.insert(image_loader() + 1, annotations)
        return pipeline

    @property
    def detector(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _check_model(self) -> None:
        prompt = getattr(self.detector, 'dense_prompt', None)
        if prompt is None:
            raise TypeError('BilevelLoop needs a model with a dense prompt (BiPA)')
        if prompt.mode != self.strategy:
            raise ValueError(
                f'train_cfg.strategy={self.strategy!r} disagrees with the model\'s dense '
                f'prompt mode {prompt.mode!r}: set both '
                f'(model.roi_head.mask_head.dense_prompt.mode)')

    @property
    def phase(self) -> str:
        return 'adaptation' if self._iter < self.adaptation_iters else 'finetune'

    def _schedule(self) -> dict:
        return dict(T=self.T, K_a=self.K_a, K_b=self.K_b, K_c=self.K_c, unit=self.unit,
                    strategy=self.strategy, iters_per_unit=self.iters_per_unit)

    def state_dict(self) -> dict:
        return dict(rounds_done=self.rounds_done, rng=get_rng_states(), **self._schedule())

    def _restore_state(self) -> None:
        state, self.loaded_state = self.loaded_state, None
        if state is None:
            return
        for key, value in self._schedule().items():
            if state[key] != value:
                raise ValueError(f'cannot resume: the checkpoint was written with '
                                 f'train_cfg {key}={state[key]!r}, the config now says '
                                 f'{value!r}')
        self.rounds_done = state['rounds_done']
        set_rng_states(state['rng'])

    # --- the loop -------------------------------------------------------------

    def run(self) -> torch.nn.Module:
        lock = lock_work_dir(self.runner.work_dir) if is_main_process() else None
        try:
            return self._run()
        finally:
            if lock is not None:
                lock.close()

    def _run(self) -> torch.nn.Module:
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            print_log(f'Advance dataloader {self._iter} steps to skip data that has '
                      'already been trained', logger='current')
            for _ in range(self._iter):
                next(self.dataloader_iterator)
            self._restore_state()  # after the skip, which consumed random numbers
            print_log(f'Resuming the {self.phase} phase at iteration {self._iter}, '
                      f'{self.rounds_done} search round(s) done', logger='current')
        while self._iter < self._max_iters and not self.stop_training:
            self._search_if_due()
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self._search_if_due()  # adaptation_only: the last round ends with its search
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _search_if_due(self) -> None:
        if self.strategy != 'bilevel' or self._iter == 0 or self._iter % self.round_iters:
            return
        round_idx = self._iter // self.round_iters
        if round_idx > self.T or round_idx <= self.rounds_done:
            return
        self._save_checkpoint()
        self._run_search(round_idx)
        self.rounds_done = round_idx

    def _save_checkpoint(self) -> None:
        """A checkpoint of w right before a search, so that a run killed during
        the search resumes it from the same weights."""
        work_dir = self.runner.work_dir
        filename = f'iter_{self._iter}.pth'
        self.runner.save_checkpoint(work_dir, filename, meta=dict(iter=self._iter),
                                    by_epoch=False)
        if is_main_process():
            with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
                f.write(osp.join(work_dir, filename))

    def build_search(self) -> PromptSearch:
        cfg = self.search_cfg
        prompt = self.detector.dense_prompt
        storage = cfg.get('storage') or 'sqlite:///' + osp.join(
            osp.abspath(self.runner.work_dir), 'prompt_search.db')
        return PromptSearch(storage=storage, study_name=cfg.get('study_name', 'prompt_search'),
                            num_groups=prompt.num_groups, interval=prompt.search_interval,
                            sampler=cfg.get('sampler', 'tpe'), seed=cfg.get('seed', 0),
                            on_trial=self._log_trial)

    def build_objective(self) -> MaskObjective:
        cfg = self.search_cfg
        dataset = DATASETS.build(self._val_dataset_cfg)
        loader = DataLoader(dataset, batch_size=cfg.get('batch_size', 1), shuffle=False,
                            num_workers=cfg.get('num_workers', 0), collate_fn=pseudo_collate)
        wrapper = self.runner.optim_wrapper
        dtype = wrapper.cast_dtype if isinstance(wrapper, AmpOptimWrapper) else None
        return MaskObjective(self.runner.model, loader, cache=cfg.get('cache', True),
                             source=self._search_source,
                             autocast_dtype=dtype)

    def _run_search(self, round_idx: int) -> None:
        prompt = self.detector.dense_prompt
        weights = torch.zeros(prompt.num_groups, device=prompt.group_weights.device)
        if is_main_process():
            search = self.build_search()
            self.runner.logger.info(
                f'prompt search round {round_idx}/{self.T}: {self.K_b} trials, study '
                f'{search.study_name}-round{round_idx} in {search.storage}')
            objective = self.build_objective()
            # the previous round's best, exactly as the study holds it
            previous = (search.best(round_idx - 1)[0] if round_idx > 1
                        else prompt.get_group_weights().tolist())
            identity = [1.0] * prompt.num_groups
            try:
                best, value = search.run_round(round_idx, self.K_b, objective,
                                               warm_start=[previous, identity])
            finally:
                objective.free()
            weights = torch.tensor(best, device=weights.device)
            self.runner.logger.info(
                f'prompt search round {round_idx}: best f={value:.6f}, rho weights='
                + '[' + ', '.join(f'{w:.4f}' for w in best) + ']')
            self.runner.visualizer.add_scalars(
                {'search/best_f': value, 'search/round': round_idx}, step=self._iter)
        broadcast(weights, src=0)
        prompt.set_group_weights(weights.cpu())

    def _log_trial(self, round_idx: int, trial) -> None:
        value = '' if trial.value is None else f'f={trial.value:.6f} '
        self.runner.logger.info(f'phase=adaptation round={round_idx} trial={trial.number} '
                                f'{value}state={trial.state.name}')
        if trial.value is not None:
            index = (round_idx - 1) * self.K_b + trial.number
            self.runner.visualizer.add_scalars({'search/f': trial.value}, step=index)
