"""BiPA's alternating training loop (paper Sec. 3.3, two-stage strategy)."""
import copy
import logging
import os.path as osp
from typing import Callable, Iterator, List, Optional, Union

import torch
from mmdet.registry import DATASETS, LOOPS
from mmengine.dataset import pseudo_collate
from mmengine.dist import broadcast, get_rank, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper
from mmengine.runner import IterBasedTrainLoop, find_latest_checkpoint
from torch.utils.data import DataLoader

from ..datasets import SearchSplit
from ..utils import ConfigError, get_rng_states, lock_work_dir, set_rng_states
from ..utils.checkpoint_files import ATOMIC_BACKEND, LAST_CHECKPOINT, write_text_atomic
from ..utils.rng import gather_rng_states, rank_rng_states
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .bilevel_config import UNITS, BilevelConfig
from .prompt_objective import MaskObjective
from .solvers import BaseSolver
from .stop_signal import StopSignals, TrainingStopped

__all__ = ['BilevelLoop', 'UNITS']


class _PhaseSwitchHook(Hook):
    """Enters the fine-tuning phase after the last adaptation iteration, before
    the parameter schedulers step (``ParamSchedulerHook`` has priority LOW)."""

    priority = 'ABOVE_NORMAL'

    def __init__(self, loop: 'BilevelLoop') -> None:
        self.loop = loop

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.loop.finetune_iters and batch_idx + 1 == self.loop.adaptation_iters:
            self.loop.start_finetune()


class _SearchHook(Hook):
    """Runs a round's prompt search after its last training iteration: after the
    parameter schedulers step and before ``CheckpointHook`` (VERY_LOW), so that
    the iteration's checkpoint holds the searched rho; the validation of that
    iteration follows, with rho set."""

    priority = 80  # between LOW (70) and VERY_LOW (90)

    def __init__(self, loop: 'BilevelLoop') -> None:
        self.loop = loop

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.loop.search_if_due(batch_idx + 1)


class _LoopStateHook(Hook):
    """Saves the loop's state (and every rank's RNG states) in every checkpoint
    and hands a loaded one back to the loop.

    Rank 0 alone writes checkpoints (``Runner.save_checkpoint``, and so
    ``before_save_checkpoint``, runs on rank 0 only), so the ranks' states
    are gathered to it beforehand, by every rank: after a training iteration
    that ``CheckpointHook`` saves (after the search, before that hook), after
    each validation (before a best checkpoint), and in the loop's own saves."""

    priority = 85  # after _SearchHook (80), before CheckpointHook (VERY_LOW, 90)

    def __init__(self, loop: 'BilevelLoop') -> None:
        self.loop = loop

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self.loop.gathered_rng = None  # stale once the iteration draws numbers

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._checkpoint_follows(runner):
            self.loop.gather_rng_states()

    @staticmethod
    def _checkpoint_follows(runner) -> bool:
        """Whether a ``CheckpointHook`` saves after this iteration (by its
        interval, or the last iteration), so that the gather, a collective,
        runs only then, not in every iteration."""
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and not hook.by_epoch and (
                    hook.every_n_train_iters(runner, hook.interval)
                    or (hook.save_last and hook.is_last_train_iter(runner))):
                return True
        return False

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.loop.gather_rng_states()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['bilevel_loop'] = self.loop.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.loop.loaded_state = checkpoint.get('bilevel_loop')


class _StopHook(Hook):
    """After each training iteration's other hooks (its checkpoint included),
    stops the run when a stop signal came (:meth:`BilevelLoop.stop_if_signalled`)."""

    priority = 'LOWEST'

    def __init__(self, loop: 'BilevelLoop') -> None:
        self.loop = loop

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.loop.stop_if_signalled(runner.iter + 1)


class _ResumingIterator:
    """The training batches. On resume, ``IterBasedTrainLoop.run`` fetches (and
    drops) the ``skip`` batches already trained on; ``on_resume`` runs once,
    right after that, before the first new batch is fetched."""

    def __init__(self, iterator: Iterator, on_resume: Callable[[], None]) -> None:
        self.iterator, self.on_resume, self.skip = iterator, on_resume, 0

    def __iter__(self) -> '_ResumingIterator':
        return self

    def __next__(self):
        batch = next(self.iterator)
        if self.skip:
            self.skip -= 1
            if not self.skip:
                self.on_resume()
        return batch


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


@LOOPS.register_module()
class BilevelLoop(IterBasedTrainLoop):
    """Alternate lower-level training and upper-level prompt search.

    1. Adaptation phase, ``T`` rounds: train the weights w for ``K_a`` units on
       D_tr with the dense prompt rho fixed; then, w fixed, run ``K_b`` Optuna
       trials over rho's ``N_g`` group weights in ``B`` scored by f on D_val;
       set rho to the best and carry w into the next round.
    2. Fine-tuning phase: rho* frozen, train w for ``K_c`` units on D_tr
       (skipped with ``adaptation_only``, paper Table 4).

    ``unit`` is ``'iter'`` or ``'epoch'`` (one epoch = one pass over D_tr).
    The loop is ``IterBasedTrainLoop`` (its ``run`` and hook calls, so
    ``val_interval`` and checkpoint intervals are in iterations; a
    ``val_interval`` longer than the run validates never, not after the last
    iteration as mmengine's loop does) plus three
    hooks: a round's search runs in ``after_train_iter`` of its last iteration,
    after the parameter schedulers and before ``CheckpointHook``; the phase
    switch before the schedulers; the loop's state rides in every checkpoint.
    The strategy (paper Table 3) is the model's dense prompt mode
    (``train_cfg.strategy``, when set, must agree): ``'bilevel'`` searches,
    ``'frozen'`` and ``'naive'`` train ``T * K_a + K_c`` units straight through.

    D_val is held out of the training dataset by ``holdout``
    (``dict(fraction=..., seed=...)`` or ``dict(count=..., seed=...)``): D_tr
    and D_val are the ``'train'`` and ``'holdout'`` parts of ``HoldoutSplit``
    over the configured training dataset, for every strategy, so ablations train
    on the same data. Or, with ``holdout=None``, ``val_split`` names a
    dataloader of the config whose dataset is D_val (e.g. ``'val_dataloader'``
    for USIS10K's official val split; never the test split). D_val is read with
    the ``val_dataloader`` pipeline, annotations loaded before resizing
    (:class:`~bipa.datasets.SearchSplit` resolves both). The resolved D_tr and
    D_val go to the log and, with their image ids and the run's and the
    holdout's seeds, to ``splits.json`` in the run's log directory.

    Learning rate per phase: ``param_scheduler`` (mmengine's key) drives the
    adaptation phase and ``finetune=dict(lr=..., param_scheduler=[...])``
    (:class:`FinetuneConfig`) the fine-tuning phase; each counts
    ``begin``/``end``/milestones from the start of its phase (iterations, or
    epochs of D_tr with ``by_epoch=True``) and ends with it. Fine-tuning
    restarts every parameter group at its initial rate, scaled to
    ``finetune.lr`` (the paper's eta-bar_omega) when set, and with
    ``finetune.reset_optimizer`` clears the optimizer's state (moments).

    ``search`` (:class:`SearchConfig`) configures the upper level: D_val's
    pipeline and loader, f (``objective``), the ``solver`` (a name registered
    in :data:`bipa.registry.SOLVERS`: an Optuna sampler, projected Adam on
    df/drho, or your own) with its ``solver_kwargs``, the seed and the Optuna
    storage.
    """

    # every rank's RNG states, gathered to rank 0 for the next checkpoint (None
    # on the other ranks, and once an iteration starts)
    gathered_rng: Optional[list] = None

    def __init__(self, runner, dataloader: Union[dict, DataLoader], **train_cfg) -> None:
        cfg = self.config = BilevelConfig.from_cfg(train_cfg)
        strategy = self._strategy_of(runner.model, cfg.strategy)
        cfg.check_strategy(strategy, isinstance(dataloader, dict))
        self.T, self.K_a, self.K_b, self.K_c = cfg.T, cfg.K_a, cfg.K_b, cfg.K_c
        self.unit, self.strategy, self.adaptation_only = cfg.unit, strategy, cfg.adaptation_only
        self.search_cfg, self.finetune_cfg = cfg.search, cfg.finetune
        self.rounds_done = 0
        self.loaded_state: Optional[dict] = None
        # the training dataloader (config) reads D_tr: BaseLoop builds it, with
        # the Runner's seed and randomness
        split = self.search_split = SearchSplit.from_cfg(
            runner.cfg, dataloader, holdout=cfg.holdout, val_split=cfg.val_split,
            pipeline=cfg.search.pipeline)
        self.val_dataset_cfg, self.val_pipeline = split.val_dataset_cfg, split.val_pipeline
        self._search_source = split.source
        self.val_dataset = None  # D_val, built on rank 0 (the only one that searches)
        super().__init__(runner, split.train_dataloader, max_iters=0, val_begin=cfg.val_begin,
                         val_interval=cfg.val_interval, dynamic_intervals=cfg.dynamic_intervals)
        # the schedule in iterations: an epoch is the length of the dataloader built above
        self.iters_per_unit = len(self.dataloader) if cfg.unit == 'epoch' else 1
        self.round_iters = cfg.K_a * self.iters_per_unit
        self.adaptation_iters = cfg.T * self.round_iters
        self.finetune_iters = 0 if cfg.adaptation_only else cfg.K_c * self.iters_per_unit
        self._max_iters = self.adaptation_iters + self.finetune_iters
        if cfg.val_interval > self._max_iters and not cfg.dynamic_intervals:
            # no validation at all, where mmengine's loop would validate after the last iteration
            self.val_begin = self._max_iters + 1
        self.dataloader_iterator = _ResumingIterator(self.dataloader_iterator, self._resume)
        # built here, so that a bad search setting stops the run before training
        self.search = self.build_search() if strategy == 'bilevel' else None
        runner.param_schedulers = self._phase_schedulers(runner.param_schedulers)
        self.stop_signals = StopSignals(cfg.stop_signals)
        for hook in (_LoopStateHook(self), _PhaseSwitchHook(self), _SearchHook(self),
                     _StopHook(self)):
            runner.register_hook(hook)
        units = cfg.unit + 's' + (f'; 1 epoch = {self.iters_per_unit} iterations'
                                  if cfg.unit == 'epoch' else '')
        runner.logger.info(
            f'BilevelLoop: strategy={strategy}, T={cfg.T}, K_a={cfg.K_a}, K_b={cfg.K_b}, '
            f'K_c={cfg.K_c} ({units}), {self._max_iters} iterations'
            + (', adaptation only' if cfg.adaptation_only else '')
            + f'; parameter schedulers (iterations): {runner.param_schedulers}')
        self._log_splits()

    @classmethod
    def check_cfg(cls, train_cfg: dict) -> None:
        """Check ``train_cfg`` (keys and values) before anything is built:
        :func:`bipa.utils.check_config` calls this for the loop."""
        BilevelConfig.from_cfg({k: v for k, v in train_cfg.items() if k != 'type'})

    # --- helpers --------------------------------------------------------------

    def _log_splits(self) -> None:
        """D_tr and D_val as resolved (D_val built here, on rank 0), in the log
        and, with their image ids and the seeds, in ``splits.json`` of the
        run's log directory."""
        if not is_main_process():  # rank 0 searches, logs and writes splits.json
            return
        if self.val_dataset_cfg is not None:
            self.val_dataset = DATASETS.build(self.val_dataset_cfg)
        lines = self.search_split.write(osp.join(self.runner.log_dir, 'splits.json'),
                                        self.dataloader.dataset, self.val_dataset)
        self.runner.logger.info('BilevelLoop splits:\n  ' + '\n  '.join(lines))

    def _in_phase(self, scheduler: dict, key: str, start: int, length: int) -> dict:
        """A scheduler config of a phase (``begin``/``end``/milestones counted
        from the phase's start, in iterations, or in epochs of D_tr with
        ``by_epoch=True``) as a config over the whole run, ending with the phase."""
        if not (isinstance(scheduler, dict) and 'type' in scheduler):
            raise TypeError(f'{key} must hold scheduler config dicts, got {scheduler!r}')
        cfg = copy.deepcopy(scheduler)
        scale = 1
        if cfg.get('by_epoch', True):  # mmengine's default
            scale = len(self.dataloader)
            if start % scale or length % scale:
                raise ConfigError(
                    f'{key} ({cfg["type"]}) counts epochs (by_epoch=True) but its phase '
                    f'(iterations {start}..{start + length}) is not whole epochs of '
                    f'{scale} iterations')
            cfg['convert_to_iter_based'] = True
        begin, end = cfg.get('begin', 0), cfg.get('end', length // scale)
        cfg['begin'] = start // scale + begin
        cfg['end'] = start // scale + min(end, length // scale)
        return cfg

    def _phase_schedulers(self, schedulers) -> Optional[list]:
        """``param_scheduler`` drives the adaptation phase and
        ``train_cfg.finetune.param_scheduler`` the fine-tuning phase; both count
        from the start of their phase and end with it."""
        if schedulers is None:
            schedulers = []
        elif isinstance(schedulers, dict):
            schedulers = [schedulers]
        phases = [(s, f'param_scheduler.{i}', 0, self.adaptation_iters)
                  for i, s in enumerate(schedulers)]
        if self.finetune_iters:
            phases += [(s, f'train_cfg.finetune.param_scheduler.{i}', self.adaptation_iters,
                        self.finetune_iters)
                       for i, s in enumerate(self.finetune_cfg.param_scheduler)]
        resolved, problems = [], []
        for phase in phases:
            try:
                resolved.append(self._in_phase(*phase))
            except ConfigError as err:  # every scheduler to change, in one line
                problems.append(str(err))
        if problems:
            raise ConfigError('; '.join(problems) + ': set by_epoch=False (and begin/end/'
                              'milestones in iterations) in each')
        return resolved or None

    def start_finetune(self) -> None:
        """Enter the fine-tuning phase: each parameter group restarts from its
        initial learning rate (times ``finetune.lr`` / the optimizer's ``lr``
        when set: the paper's eta-bar_omega), the optimizer's state is cleared
        with ``finetune.reset_optimizer``, and rho* is frozen."""
        optimizer = self.runner.optim_wrapper.optimizer
        lr = self.finetune_cfg.lr
        factor = 1.0 if lr is None else lr / optimizer.defaults['lr']
        for group in optimizer.param_groups:
            group['lr'] = group.get('initial_lr', group['lr']) * factor
        if self.finetune_cfg.reset_optimizer:
            # per-parameter state is created again at the next step (step 1)
            optimizer.state.clear()
        if self.strategy == 'bilevel':
            self.detector.dense_prompt.freeze()
        self.runner.logger.info(
            f'fine-tuning phase from iteration {self.adaptation_iters} (after the last '
            f'search, rho* frozen): learning rate restarts at '
            f'{optimizer.param_groups[0]["lr"]:.3g}'
            + (', optimizer state cleared (train_cfg.finetune.reset_optimizer)'
               if self.finetune_cfg.reset_optimizer else ''))

    @property
    def detector(self):
        return _unwrap(self.runner.model)

    @staticmethod
    def _strategy_of(model, strategy: Optional[str]) -> str:
        """The model's dense prompt mode; ``train_cfg.strategy``, when set (one
        of the modes: :class:`BilevelConfig`), must name the same."""
        prompt = getattr(_unwrap(model), 'dense_prompt', None)
        if prompt is None:
            raise TypeError('BilevelLoop needs a model with a dense prompt (BiPA)')
        if strategy is not None and strategy != prompt.mode:
            raise ConfigError(
                f'train_cfg.strategy={strategy!r} disagrees with the model\'s dense prompt mode '
                f'{prompt.mode!r} (model.roi_head.mask_head.dense_prompt.mode): set the mode '
                'only; the strategy follows it')
        return prompt.mode

    @property
    def phase(self) -> str:
        return 'adaptation' if self._iter < self.adaptation_iters else 'finetune'

    def _schedule(self) -> dict:
        return dict(T=self.T, K_a=self.K_a, K_b=self.K_b, K_c=self.K_c, unit=self.unit,
                    strategy=self.strategy, iters_per_unit=self.iters_per_unit)

    def gather_rng_states(self) -> None:
        """Gather every rank's RNG states to rank 0 for the checkpoints written
        before the next iteration starts (a collective: every rank calls it;
        one process has nothing to gather)."""
        if get_world_size() > 1:
            self.gathered_rng = gather_rng_states()

    def state_dict(self) -> dict:
        """The loop's state; ``rng``: the RNG states of every rank, indexed by rank."""
        rng = [get_rng_states()] if get_world_size() == 1 else self.gathered_rng
        if rng is None:  # rank 0, in a save no gather precedes: rank 0's, for every rank
            print_log('BilevelLoop: this checkpoint holds rank 0\'s RNG states only (saved '
                      'outside a training iteration\'s or validation\'s hooks); a resume '
                      'gives them to every rank', logger='current', level=logging.WARNING)
            rng = get_rng_states()
        return dict(rounds_done=self.rounds_done, rng=rng, **self._schedule())

    # --- the loop -------------------------------------------------------------

    def run(self) -> torch.nn.Module:
        lock = lock_work_dir(self.runner.work_dir) if is_main_process() else None
        try:
            if self._iter and self.loaded_state is not None:  # resuming
                self.loaded_state = self._with_rank_rng(self.loaded_state)
            self.dataloader_iterator.skip = self._iter  # resuming: _resume after the skip
            with self.stop_signals:
                return super().run()
        finally:
            if lock is not None:
                lock.close()

    def _with_rank_rng(self, state: dict) -> dict:
        """A loaded loop state with this rank's RNG states; a checkpoint written
        by another number of processes stops the run here, before the skip."""
        name = self.runner.cfg.get('load_from') or find_latest_checkpoint(self.runner.work_dir)
        rng = rank_rng_states(state['rng'], rank=get_rank(), world_size=get_world_size(),
                              checkpoint=f'{name} (iteration {self._iter})')
        return dict(state, rng=rng)

    def _resume(self) -> None:
        """Continue a resumed run where its checkpoint left off: the loop's
        state and this rank's RNG states (restored after the dataloader skip,
        which consumed random numbers), rho* frozen in fine-tuning, and a search the
        checkpoint was written before."""
        state, self.loaded_state = self.loaded_state, None
        if state is not None:
            for key, value in self._schedule().items():
                if state[key] != value:
                    raise ConfigError(f'cannot resume: the checkpoint was written with '
                                      f'train_cfg {key}={state[key]!r}, the config now says '
                                      f'{value!r}')
            self.rounds_done = state['rounds_done']
            set_rng_states(state['rng'])
        if self.strategy == 'bilevel' and self.phase == 'finetune':
            self.detector.dense_prompt.freeze()
        print_log(f'Resuming the {self.phase} phase at iteration {self._iter}, '
                  f'{self.rounds_done} search round(s) done', logger='current')
        self.search_if_due(self._iter)

    def search_if_due(self, iteration: int) -> None:
        """Run round r's search once ``iteration`` (iterations trained) ends it."""
        if self.strategy != 'bilevel' or iteration % self.round_iters:
            return
        round_idx = iteration // self.round_iters
        if not self.rounds_done < round_idx <= self.T:
            return
        self._save_checkpoint(iteration)
        self._run_search(round_idx, iteration)
        self.rounds_done = round_idx

    def _save_checkpoint(self, iteration: int) -> None:
        """A checkpoint of w now (``iteration``: iterations trained), e.g. right
        before a search, so that a run killed during the search resumes it
        from the same weights. Written by the config's
        :class:`AtomicCheckpointHook` (whole or not at all, named in
        ``last_checkpoint``, counted by ``max_keep_ckpts``), which may write
        the same file again after the search: rho* and the next round's state
        replace it. Without that hook: written whole in the work dir."""
        self.gather_rng_states()
        hook = next((h for h in self.runner.hooks if isinstance(h, AtomicCheckpointHook)), None)
        if hook is not None:
            hook.save_at(self.runner, iteration)
            return
        work_dir, filename = self.runner.work_dir, f'iter_{iteration}.pth'
        self.runner.save_checkpoint(work_dir, filename, meta=dict(iter=iteration),
                                    by_epoch=False, backend_args=dict(backend=ATOMIC_BACKEND))
        if is_main_process():
            write_text_atomic(osp.join(work_dir, LAST_CHECKPOINT), osp.join(work_dir, filename))

    def stop_if_signalled(self, iteration: int) -> None:
        """After iteration ``iteration``: when a stop signal (``train_cfg.
        stop_signals``) reached any rank, write a checkpoint and raise
        :class:`TrainingStopped` on every rank. Not after the last iteration,
        which ends the run anyway."""
        if iteration >= self._max_iters:
            return
        name = self.stop_signals.received()
        if name is None:
            return
        self._save_checkpoint(iteration)
        message = (f'stopped by {name} after iteration {iteration} of {self._max_iters}: '
                   f'{osp.join(self.runner.work_dir, f"iter_{iteration}.pth")} written; run '
                   'again with --resume to continue')
        self.runner.logger.warning(message)
        raise TrainingStopped(message)

    def build_search(self) -> BaseSolver:
        """The upper level's solver, ``train_cfg.search.solver`` (a name in
        :data:`bipa.registry.SOLVERS`)."""
        cfg = self.search_cfg
        prompt = self.detector.dense_prompt
        storage = cfg.storage or 'sqlite:///' + osp.join(
            osp.abspath(self.runner.work_dir), 'prompt_search.db')
        return cfg.build(num_groups=prompt.num_groups, interval=prompt.search_interval,
                         storage=storage, on_trial=self._log_trial)

    def build_objective(self, dataset: Optional[dict] = None,
                        source: Optional[str] = None) -> MaskObjective:
        """f (``train_cfg.search``) on D_val, or on ``dataset`` (a dataset
        config, read with D_val's pipeline, e.g. the test split for a probe;
        ``source`` names it in errors)."""
        cfg = self.search_cfg
        if dataset is not None:
            dataset = DATASETS.build(dict(copy.deepcopy(dataset), pipeline=self.val_pipeline))
        loader = DataLoader(self.val_dataset if dataset is None else dataset,
                            batch_size=cfg.batch_size, shuffle=False,
                            num_workers=cfg.num_workers, collate_fn=pseudo_collate)
        wrapper = self.runner.optim_wrapper
        dtype = wrapper.cast_dtype if isinstance(wrapper, AmpOptimWrapper) else None
        return MaskObjective(self.runner.model, loader, cache=cfg.cache, autocast_dtype=dtype,
                             source=source or self._search_source, objective=cfg.objective)

    def _run_search(self, round_idx: int, iteration: int) -> None:
        """Round ``round_idx``'s search on rank 0; rho* (or that a stop signal
        ended the search after a trial) broadcast to every rank."""
        prompt = self.detector.dense_prompt
        # [stopped, rho's group weights]
        packet = torch.zeros(1 + prompt.num_groups, device=prompt.group_weights.device)
        if is_main_process():
            search = self.search
            self.runner.logger.info(
                f'prompt search round {round_idx}/{self.T}: {self.K_b} trials, study '
                f'{search.study_name}-round{round_idx} in {search.storage}')
            objective = self.build_objective()
            # the previous round's best, exactly as the study holds it
            previous = (search.best(round_idx - 1)[0] if round_idx > 1
                        else prompt.get_group_weights().tolist())
            identity = [1.0] * prompt.num_groups
            try:
                # outside the trials: a D_val that cannot be scored stops the run
                objective.prepare()
                best, value = search.run_round(round_idx, self.K_b, objective,
                                               warm_start=[previous, identity])
                packet[1:] = torch.tensor(best)
                self.runner.logger.info(
                    f'prompt search round {round_idx}: best f={value:.6f}, rho weights='
                    + '[' + ', '.join(f'{w:.4f}' for w in best) + ']')
                self._log_round(round_idx, iteration, value, best)
            except TrainingStopped:
                packet[0] = 1
            finally:
                objective.free()
        broadcast(packet, src=0)
        if packet[0]:
            message = (f'stopped by a stop signal in round {round_idx}\'s search: its finished '
                       f'trials are in the study, and iter_{iteration}.pth (written before '
                       'the search) holds the weights; run again with --resume to continue')
            self.runner.logger.warning(message)
            raise TrainingStopped(message)
        prompt.set_group_weights(packet[1:].cpu())

    def _log_round(self, round_idx: int, iteration: int, value: float,
                   weights: List[float]) -> None:
        """The visualizer's (TensorBoard's) scalars of a round: its best f and
        rho's group weights at step ``round_idx``; the round at step
        ``iteration`` (the training iteration it follows)."""
        visualizer = self.runner.visualizer
        visualizer.add_scalars({'search/best_f': value, **{
            f'rho/group_{g:02d}': w for g, w in enumerate(weights)}}, step=round_idx)
        visualizer.add_scalars({'search/round': round_idx}, step=iteration)

    def _log_trial(self, round_idx: int, trial) -> None:
        """A trial's line in the log; its f in the visualizer at step
        ``(round_idx - 1) * K_b + trial.number`` (trials counted over rounds).
        A stop signal ends the search after it."""
        value = '' if trial.value is None else f'f={trial.value:.6f} '
        self.runner.logger.info(f'phase=adaptation round={round_idx} trial={trial.number} '
                                f'{value}state={trial.state.name}')
        if trial.value is not None:
            index = (round_idx - 1) * self.K_b + trial.number
            self.runner.visualizer.add_scalars({'search/f': trial.value}, step=index)
        if self.stop_signals.received(every_rank=False):  # rank 0 alone searches
            raise TrainingStopped
