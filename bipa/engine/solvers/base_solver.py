"""The upper level's solvers: what every solver of rho's group weights shares."""
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import optuna
from mmengine.logging import MMLogger
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from ...models.layers.dense_prompt import check_interval
from ...utils import ConfigError
from ..optuna_compat import enqueued_params, reopen_trial, set_trial_user_attr
from ..prompt_objective import DIFFERENTIABLE

# the states of a trial that counts towards a round's K_b
FINISHED = (TrialState.COMPLETE, TrialState.FAIL)
# what a trial may raise that makes it a failed trial rather than a crash
TRIAL_ERRORS = (RuntimeError, ValueError, FloatingPointError)
# the user attribute of a failed trial that says why
FAIL_REASON = 'fail_reason'
# fail reason of a trial killed while its parameters were written
INTERRUPTED = 'interrupted'


def best_trial(study: optuna.Study) -> Optional[optuna.trial.FrozenTrial]:
    """The COMPLETE trial of least f, earliest on ties (the round's rho), or None."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, ))
    return min(complete, key=lambda t: (t.value, t.number)) if complete else None


def fail_reasons(study: optuna.Study) -> Dict[int, str]:
    """Why each failed trial of ``study`` failed, by trial number: the trial's
    user attribute ``fail_reason`` (in storages written before it was one, the
    study's user attribute ``trial_<number>_fail_reason``)."""
    legacy = study.user_attrs
    reasons = {}
    for trial in study.get_trials(deepcopy=False):
        reason = trial.user_attrs.get(FAIL_REASON,
                                      legacy.get(f'trial_{trial.number}_fail_reason'))
        if reason is not None:
            reasons[trial.number] = str(reason)
    return reasons


def study_name_of(prefix: str, round_idx: int) -> str:
    return f'{prefix}-round{round_idx}'


def seed_of(*entropy: int) -> int:
    """A 32-bit seed drawn from ``entropy`` (e.g. the seed, round and position)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


class BaseSolver:
    """An upper-level solver: minimises f over ``N_g`` group weights in
    ``B = [low, high]``, one round at a time, every evaluation of f an Optuna
    trial.

    The base class owns the study and its storage: one study per round
    (``{study_name}-round{t}``; f depends on that round's weights w, so trials
    of different rounds are not comparable), the warm-start points enqueued,
    failed trials (an error or a non-finite f is a FAIL trial with its reason,
    not a crash), trials a killed process left RUNNING, and the best trial.
    A solver decides only where the next trial goes: :meth:`next_point`
    returns it (the base enqueues it), or returns None and :meth:`sampler`
    proposes it; it may keep more per trial in :meth:`_score`.

    **The resume invariant**: the next point is a pure function of the
    round's stored trials that count (in order), the warm-start points and
    ``(seed, round)``; nothing else may influence it (no state kept in the
    solver between trials, no clock, no global random generator). Then a
    round killed at any moment and run again from the storage ends with the
    same COMPLETE trials, in the same order, with the same f, as an
    uninterrupted one. A trial killed while Optuna wrote its parameters stays
    in the study as FAIL (reason ``interrupted ...``) and does not count, so
    the trial asked next is asked in the same position.

    Subclasses are registered in :data:`bipa.registry.SOLVERS` under the name
    ``train_cfg.search.solver`` gives; their own keyword arguments are
    ``train_cfg.search.solver_kwargs``, checked by :meth:`check_settings`.

    Args:
        storage: an Optuna storage URL (e.g. ``sqlite:///work_dirs/x/prompt_search.db``)
            or storage.
        study_name: prefix of the per-round study names.
        num_groups: N_g.
        interval: B.
        seed: base seed of the solver's randomness.
        on_trial: called as ``on_trial(round, trial)`` after each finished trial.
    """

    #: f must give its gradient (``objective.value_and_grad``)
    needs_gradient = False
    #: where the points go: ``'global'`` (spread over B) or ``'local'`` (a
    #: path from the warm start); tools/analysis/search_compare.py groups by it
    explores = 'global'

    def __init__(self, *, storage, study_name: str, num_groups: int,
                 interval: Sequence[float], seed: int = 0,
                 on_trial: Optional[Callable] = None) -> None:
        self.storage = storage
        self._rdb: Optional[optuna.storages.BaseStorage] = None
        self.study_name = study_name
        self.num_groups = num_groups
        self.interval = check_interval(interval, 'search interval')
        self.seed = seed
        self.on_trial = on_trial
        # trials are logged through mmengine's logger (on_trial), not Optuna's
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.distributions = {self.param(g): FloatDistribution(*self.interval)
                              for g in range(num_groups)}

    @classmethod
    def check_settings(cls, settings: dict) -> dict:
        """The solver's keyword arguments (``train_cfg.search.solver_kwargs``)
        with its defaults filled in; a bad one raises a :class:`ConfigError`
        naming it. The base solver takes none."""
        if settings:
            raise ConfigError(f'train_cfg.search.solver_kwargs.{sorted(settings)[0]}: '
                              f'{cls.__name__} takes no keyword arguments')
        return {}

    @classmethod
    def can_use(cls, objective: str) -> bool:
        """Whether this solver can minimise f of kind ``objective``."""
        return objective in DIFFERENTIABLE or not cls.needs_gradient

    @property
    def rdb(self) -> optuna.storages.BaseStorage:
        """The storage, opened once (a URL opens a database engine per call)."""
        if self._rdb is None:
            self._rdb = optuna.storages.get_storage(self.storage)
        return self._rdb

    @staticmethod
    def param(group: int) -> str:
        return f'w{group:02d}'

    def weights_of(self, params: dict) -> List[float]:
        return [float(params[self.param(g)]) for g in range(self.num_groups)]

    def params_of(self, weights: Sequence[float]) -> dict:
        low, high = self.interval
        return {self.param(g): min(max(float(w), low), high) for g, w in enumerate(weights)}

    def sampler(self, round_idx: int, position: int) -> optuna.samplers.BaseSampler:
        """The sampler that proposes the trial at ``position`` (trials that
        count before it) of round ``round_idx`` when :meth:`next_point` gives
        none: here a seeded random sampler."""
        return optuna.samplers.RandomSampler(seed=seed_of(self.seed, round_idx, position))

    def study(self, round_idx: int) -> optuna.Study:
        return optuna.create_study(
            study_name=study_name_of(self.study_name, round_idx), storage=self.rdb,
            direction='minimize', load_if_exists=True, sampler=self.sampler(round_idx, 0))

    def _evaluate(self, study: optuna.Study, round_idx: int, trial_number: int,
                  objective: Callable[[List[float]], float]) -> None:
        trial = study.get_trials(deepcopy=False)[trial_number]
        weights = self.weights_of(trial.params)
        try:
            value, attrs = self._score(objective, weights)
            if not math.isfinite(value):
                raise FloatingPointError(f'f is not finite ({value})')
            for key, attr in attrs.items():
                set_trial_user_attr(study, trial, key, attr)
        except TRIAL_ERRORS as err:
            reason = f'{type(err).__name__}: {err}'
            set_trial_user_attr(study, trial, FAIL_REASON, reason)
            study.tell(trial_number, state=TrialState.FAIL)
            MMLogger.get_current_instance().warning(
                f'prompt search round {round_idx} trial {trial_number} failed: {reason}')
        else:
            study.tell(trial_number, value)
        if self.on_trial is not None:
            self.on_trial(round_idx, study.get_trials(deepcopy=False)[trial_number])

    def _score(self, objective: Callable, weights: List[float]) -> Tuple[float, dict]:
        """f at ``weights`` and the user attributes its trial keeps."""
        return objective(weights), {}

    @staticmethod
    def _interrupted(study: optuna.Study) -> set:
        """Numbers of the trials failed as interrupted (see :meth:`_recover`)."""
        return {number for number, reason in fail_reasons(study).items()
                if reason.startswith(INTERRUPTED)}

    def _recover(self, study: optuna.Study, round_idx: int, trial,
                 objective: Callable[[List[float]], float]) -> None:
        """Finish a trial left RUNNING by a killed process (the work dir is locked,
        so no live process owns it).

        With all its parameters it is evaluated now. An enqueued point (warm
        start) gets its missing parameters from the queue entry, then is
        evaluated. A sampled trial killed while Optuna wrote its parameters is
        told FAIL as interrupted: it does not count, and the next trial is asked
        in the same position, so the solver proposes it again.
        """
        if set(trial.params) != set(self.distributions):
            fixed = enqueued_params(trial)
            if fixed is None or set(fixed) != set(self.distributions):
                set_trial_user_attr(study, trial, FAIL_REASON,
                                    f'{INTERRUPTED} while its parameters were written '
                                    f'({len(trial.params)} of {self.num_groups})')
                study.tell(trial.number, state=TrialState.FAIL)
                return
            # the queue entry's values, written as Optuna's ask would have
            live = reopen_trial(study, trial)
            for name, dist in self.distributions.items():
                live.suggest_float(name, dist.low, dist.high)
        self._evaluate(study, round_idx, trial.number, objective)

    def _check_objective(self, objective) -> None:
        if self.needs_gradient and not callable(getattr(objective, 'value_and_grad', None)):
            raise TypeError(f'{type(self).__name__} needs an objective with value_and_grad '
                            '(MaskObjective of a differentiable f)')

    def _start_round(self, round_idx: int, warm_start: Sequence[Sequence[float]]) -> None:
        """Called once before a round's trials (e.g. to read earlier rounds)."""

    def run_round(self, round_idx: int, num_trials: int,
                  objective: Callable[[List[float]], float],
                  warm_start: Sequence[Sequence[float]] = ()) -> Tuple[List[float], float]:
        """Run (or finish) round ``round_idx`` to ``num_trials`` finished trials,
        warm-started at ``warm_start`` (evaluated first, duplicates once);
        return the best weights and their f."""
        self._check_objective(objective)
        self._start_round(round_idx, warm_start)
        study = self.study(round_idx)
        for weights in warm_start:
            study.enqueue_trial(self.params_of(weights), skip_if_exists=True)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self._recover(study, round_idx, trial, objective)
        while True:
            interrupted = self._interrupted(study)
            trials = [t for t in study.get_trials(deepcopy=False)
                      if t.number not in interrupted]
            if sum(t.state in FINISHED for t in trials) >= num_trials:
                break
            self._before_ask(study, round_idx, trials, warm_start)
            trial = study.ask(self.distributions)
            self._evaluate(study, round_idx, trial.number, objective)
        return self.best(round_idx, study)

    def next_point(self, finished: Sequence[optuna.trial.FrozenTrial],
                   warm_start: Sequence[Sequence[float]]) -> Optional[List[float]]:
        """The next trial's point, from the round's finished trials that count
        (in order) and the warm-start points only (the resume invariant); or
        None: :meth:`sampler` proposes it. Not called while a point waits in
        the queue (a warm-start point, or one enqueued before a kill)."""
        return None

    def _before_ask(self, study: optuna.Study, round_idx: int, trials: list,
                    warm_start: Sequence[Sequence[float]]) -> None:
        """Set up the next ``ask``, given the round's trials that count (in
        order): a waiting point is asked as it is; otherwise :meth:`next_point`
        is enqueued, or the sampler of this position proposes."""
        point = None
        if not any(t.state == TrialState.WAITING for t in trials):
            point = self.next_point([t for t in trials if t.state in FINISHED], warm_start)
        if point is None:
            study.sampler = self.sampler(round_idx, len(trials))
        else:
            study.enqueue_trial(self.params_of(point))

    def best(self, round_idx: int,
             study: Optional[optuna.Study] = None) -> Tuple[List[float], float]:
        """The best weights of round ``round_idx`` and their f (earliest on ties)."""
        study = study or self.study(round_idx)
        best = best_trial(study)
        if best is None:
            raise RuntimeError(f'prompt search round {round_idx}: no trial completed '
                               f'(why each failed: the user attribute '
                               f'{FAIL_REASON!r} of the trials of the study '
                               f'{study.study_name} at {self.storage})')
        return self.weights_of(best.params), float(best.value)
