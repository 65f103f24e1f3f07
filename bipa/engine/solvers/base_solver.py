"""Upper level of BiPA: Optuna search over the dense prompt's group weights."""
import copy
import inspect
import math
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import optuna
from mmengine.logging import MMLogger
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from ..models.layers.dense_prompt import check_interval
from ..utils import ConfigError
from .optuna_compat import enqueued_params, reopen_trial, set_trial_user_attr


class ResumableCmaEsSampler(optuna.samplers.CmaEsSampler):
    """Optuna's CMA-ES sampler seeding each proposal by ``position`` (the
    number of trials before it that count) instead of the trial's number: a
    trial re-asked after one interrupted (:meth:`PromptSearch._recover`)
    gets the proposal the interrupted one would have had."""

    position: Optional[int] = None

    def sample_relative(self, study, trial, search_space):
        if self.position is not None:
            trial = copy.copy(trial)
            trial.number = self.position
        return super().sample_relative(study, trial, search_space)


#: ``train_cfg.search.sampler``: Optuna's sampler classes, and the keyword
#: arguments BiPA sets unless ``sampler_kwargs`` does (the seed is always ours)
SAMPLERS = {
    'tpe': (optuna.samplers.TPESampler, dict(multivariate=True)),
    'gp': (optuna.samplers.GPSampler, {}),
    'cmaes': (ResumableCmaEsSampler, {}),
    'random': (optuna.samplers.RandomSampler, {}),
}
# the sampler keywords Optuna does not check when the sampler is built
SAMPLER_KWARG_CHECKS = {
    'n_startup_trials': ('a non-negative integer',
                         lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    'popsize': ('an integer >= 4 or None', lambda v: v is None or (
        isinstance(v, int) and not isinstance(v, bool) and v >= 4)),
    'sigma0': ('a positive number or None', lambda v: v is None or (
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0)),
    **{key: ('True or False', lambda v: isinstance(v, bool))
       for key in ('multivariate', 'group', 'deterministic_objective', 'use_separable_cma',
                   'with_margin', 'lr_adapt', 'consider_endpoints', 'constant_liar')},
}
# WS-CMA-ES (Optuna's CmaEsSampler(source_trials=...)) starts from the best 10%
# of the source trials
WS_CMA_MIN_TRIALS = 10
#: ``train_cfg.search.method``
SEARCH_METHODS = ('optuna', 'gradient')
# the states of a trial that counts towards a round's K_b
FINISHED = (TrialState.COMPLETE, TrialState.FAIL)
# what a trial may raise that makes it a failed trial rather than a crash
TRIAL_ERRORS = (RuntimeError, ValueError, FloatingPointError)
# the user attribute of a failed trial that says why
FAIL_REASON = 'fail_reason'
# fail reason of a trial killed while its parameters were written
INTERRUPTED = 'interrupted'


def check_sampler_kwargs(sampler: str, kwargs: dict) -> dict:
    """The sampler's keyword arguments: BiPA's defaults updated by
    ``kwargs``, each a keyword of the sampler's class (``seed`` is BiPA's,
    and CMA-ES's warm start sets ``source_trials``)."""
    cls, defaults = SAMPLERS[sampler]
    accepted = set(inspect.signature(cls.__init__).parameters) - {'self', 'seed'}
    if sampler == 'cmaes':
        accepted -= {'source_trials'}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f'train_cfg.search.sampler_kwargs.{unknown[0]}: not a keyword '
                          f'of {cls.__name__} here; it takes {", ".join(sorted(accepted))}')
    for key, value in kwargs.items():
        expected, check = SAMPLER_KWARG_CHECKS.get(key, (None, None))
        if check is not None and not check(value):
            raise ConfigError(f'train_cfg.search.sampler_kwargs.{key} must be {expected}, '
                              f'got {value!r}')
    return dict(defaults, **kwargs)


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


class PromptSearch:
    """Ask-and-tell Optuna search over ``N_g`` group weights in ``B = [low, high]``.

    Each round of the bilevel loop is its own study (``{study_name}-round{t}``)
    in one storage (SQLite under the work dir by default): f depends on the
    weights w of that round, so trials of different rounds are not comparable.
    Each round is warm-started by enqueueing the previous best and the identity
    point. The sampler is re-seeded before every ``ask`` from
    ``(seed, round, trial number)``, so a search interrupted and resumed from
    its storage proposes exactly what an uninterrupted one would have.

    Args:
        storage: an Optuna storage URL, e.g. ``sqlite:///work_dirs/x/prompt_search.db``.
        study_name: prefix of the per-round study names.
        num_groups: N_g.
        interval: B.
        sampler: a key of :data:`SAMPLERS`: ``'tpe'`` (multivariate TPE),
            ``'gp'``, ``'cmaes'`` (warm-started, see :meth:`_make_sampler`) or
            ``'random'``.
        sampler_kwargs: keyword arguments of the sampler's class (all but
            ``seed``), e.g. ``dict(n_startup_trials=4)`` for TPE.
        seed: base seed of the sampler.
        on_trial: called as ``on_trial(round, trial)`` after each finished trial.
    """

    def __init__(self, *, storage: str, study_name: str, num_groups: int,
                 interval: Sequence[float], sampler: str = 'tpe',
                 sampler_kwargs: Optional[dict] = None, seed: int = 0,
                 on_trial: Optional[Callable] = None) -> None:
        if sampler not in SAMPLERS:
            raise ConfigError(f'train_cfg.search.sampler must be one of {tuple(SAMPLERS)}, '
                              f'got {sampler!r}')
        self.storage = storage
        self._rdb: Optional[optuna.storages.BaseStorage] = None
        self.study_name = study_name
        self.num_groups = num_groups
        self.interval = check_interval(interval, 'search interval')
        self.sampler = sampler
        self.sampler_kwargs = check_sampler_kwargs(sampler, sampler_kwargs or {})
        self.seed = seed
        self.on_trial = on_trial
        # trials are logged through mmengine's logger (on_trial), not Optuna's
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.distributions = {self.param(g): FloatDistribution(*self.interval)
                              for g in range(num_groups)}
        # CMA-ES's warm start: the previous round's trials (set by run_round)
        self._source_trials: Optional[list] = None
        self._make_sampler(1, 0)  # a bad keyword value stops the run here

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

    def _make_sampler(self, round_idx: int, number: int) -> optuna.samplers.BaseSampler:
        """The sampler for trial ``number`` of round ``round_idx``, seeded from
        ``(seed, round, number)``. CMA-ES starts from the previous round's
        trials (WS-CMA-ES's ``source_trials``) or, in round 1, at the centre of B."""
        seed = int(np.random.SeedSequence([self.seed, round_idx, number]).generate_state(1)[0])
        cls, _ = SAMPLERS[self.sampler]
        kwargs = dict(self.sampler_kwargs, seed=seed)
        # WS-CMA-ES sets the initial mean, step size and covariance itself
        if self.sampler == 'cmaes' and self._source_trials and 'sigma0' not in kwargs \
                and not kwargs.get('use_separable_cma'):
            kwargs.update(source_trials=self._source_trials)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
                sampler = cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f'train_cfg.search.sampler_kwargs: {cls.__name__} refused '
                              f'{self.sampler_kwargs}: {err}') from err
        if isinstance(sampler, ResumableCmaEsSampler):
            sampler.position = number
        return sampler

    def study(self, round_idx: int) -> optuna.Study:
        return optuna.create_study(
            study_name=study_name_of(self.study_name, round_idx), storage=self.rdb,
            direction='minimize', load_if_exists=True,
            sampler=self._make_sampler(round_idx, 0))

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
        with the same sampler seed, so the sampler proposes it again.
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

    def _set_warm_start(self, round_idx: int) -> None:
        """CMA-ES's start: the previous round's COMPLETE trials (read from the
        storage: resumable) when there are at least :data:`WS_CMA_MIN_TRIALS`;
        otherwise (and in round 1) the centre of B."""
        self._source_trials = None
        if self.sampler == 'cmaes' and round_idx > 1:
            try:
                previous = optuna.load_study(
                    study_name=study_name_of(self.study_name, round_idx - 1), storage=self.rdb)
            except KeyError:  # no previous round in this storage: the centre of B
                previous = None
            if previous is not None:
                source = previous.get_trials(states=(TrialState.COMPLETE, ))
                # WS-CMA-ES fits its start to the best 10% of them: one at least
                self._source_trials = source if len(source) >= WS_CMA_MIN_TRIALS else None

    def run_round(self, round_idx: int, num_trials: int,
                  objective: Callable[[List[float]], float],
                  warm_start: Sequence[Sequence[float]] = ()) -> Tuple[List[float], float]:
        """Run (or finish) round ``round_idx`` to ``num_trials`` finished trials;
        return the best weights and their f.

        A round interrupted at any point and run again ends with the same
        COMPLETE trials, in the same order, with the same f, as an
        uninterrupted one; a trial killed while its parameters were written
        stays in the study as FAIL (reason ``interrupted ...``) and does not
        count.
        """
        self._set_warm_start(round_idx)
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

    def _before_ask(self, study: optuna.Study, round_idx: int, trials: list,
                    warm_start: Sequence[Sequence[float]]) -> None:
        """Set up the next ``ask``, given the round's trials that count (in
        order): the sampler, seeded by their number, so that a re-asked
        interrupted trial gets the same proposal."""
        study.sampler = self._make_sampler(round_idx, len(trials))

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
