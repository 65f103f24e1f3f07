"""Upper-level solvers that are Optuna samplers (TPE, GP, CMA-ES, random)."""
import copy
import inspect
import warnings
from typing import Optional

import optuna
from optuna.trial import TrialState

from ...registry import SOLVERS
from ...utils import ConfigError
from .base_solver import BaseSolver, seed_of, study_name_of

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


class OptunaSolver(BaseSolver):
    """A solver whose every trial an Optuna sampler proposes.

    The sampler is built anew before every ``ask``, seeded from
    ``(seed, round, position)`` (position: the trials that count before it),
    so that a resumed round proposes what an uninterrupted one would have.
    Its keyword arguments are ``train_cfg.search.solver_kwargs``: any keyword
    of the sampler's class but ``seed`` (BiPA's), over :attr:`defaults`.
    """

    #: the Optuna sampler class
    sampler_class: type = optuna.samplers.RandomSampler
    #: keyword arguments BiPA sets unless ``solver_kwargs`` does
    defaults: dict = {}
    #: keywords of the sampler's class BiPA sets itself
    reserved = ('self', 'seed')

    def __init__(self, *, storage, study_name: str, num_groups: int, interval,
                 seed: int = 0, on_trial=None, **sampler_kwargs) -> None:
        super().__init__(storage=storage, study_name=study_name, num_groups=num_groups,
                         interval=interval, seed=seed, on_trial=on_trial)
        self.sampler_kwargs = self.check_settings(sampler_kwargs)
        self.sampler(1, 0)  # a value Optuna refuses stops the run here

    @classmethod
    def check_settings(cls, settings: dict) -> dict:
        """BiPA's defaults updated by ``settings``, each a keyword of the
        sampler's class, of the kind :data:`SAMPLER_KWARG_CHECKS` expects."""
        accepted = set(inspect.signature(cls.sampler_class.__init__).parameters)
        accepted -= set(cls.reserved)
        unknown = sorted(set(settings) - accepted)
        if unknown:
            raise ConfigError(f'train_cfg.search.solver_kwargs.{unknown[0]}: not a keyword of '
                              f'{cls.sampler_class.__name__} here; it takes '
                              f'{", ".join(sorted(accepted))}')
        for key, value in settings.items():
            expected, check = SAMPLER_KWARG_CHECKS.get(key, (None, None))
            if check is not None and not check(value):
                raise ConfigError(f'train_cfg.search.solver_kwargs.{key} must be {expected}, '
                                  f'got {value!r}')
        return dict(cls.defaults, **settings)

    def _sampler_kwargs(self, round_idx: int, position: int) -> dict:
        return dict(self.sampler_kwargs, seed=seed_of(self.seed, round_idx, position))

    def sampler(self, round_idx: int, position: int) -> optuna.samplers.BaseSampler:
        cls = self.sampler_class
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
                return cls(**self._sampler_kwargs(round_idx, position))
        except (TypeError, ValueError) as err:
            raise ConfigError(f'train_cfg.search.solver_kwargs: {cls.__name__} refused '
                              f'{self.sampler_kwargs}: {err}') from err


@SOLVERS.register_module(name='tpe')
class TPESolver(OptunaSolver):
    """Optuna's TPE, multivariate (the paper's sampler)."""

    sampler_class = optuna.samplers.TPESampler
    defaults = dict(multivariate=True)


@SOLVERS.register_module(name='gp')
class GPSolver(OptunaSolver):
    """Optuna's Gaussian-process sampler."""

    sampler_class = optuna.samplers.GPSampler


@SOLVERS.register_module(name='random')
class RandomSolver(OptunaSolver):
    """Uniform random points of B (a baseline)."""

    sampler_class = optuna.samplers.RandomSampler


class ResumableCmaEsSampler(optuna.samplers.CmaEsSampler):
    """Optuna's CMA-ES sampler seeding each proposal by ``position`` (the
    number of trials before it that count) instead of the trial's number: a
    trial re-asked after one interrupted (:meth:`BaseSolver._recover`) gets
    the proposal the interrupted one would have had."""

    position: Optional[int] = None

    def sample_relative(self, study, trial, search_space):
        if self.position is not None:
            trial = copy.copy(trial)
            trial.number = self.position
        return super().sample_relative(study, trial, search_space)


@SOLVERS.register_module(name='cmaes')
class CmaEsSolver(OptunaSolver):
    """Optuna's CMA-ES, warm-started: from round 2, WS-CMA-ES
    (``source_trials``) on the previous round's COMPLETE trials (read from the
    storage: resumable) when there are at least :data:`WS_CMA_MIN_TRIALS`;
    otherwise (and in round 1) at the centre of B."""

    sampler_class = ResumableCmaEsSampler
    reserved = ('self', 'seed', 'source_trials')

    def __init__(self, **kwargs) -> None:
        self._source_trials: Optional[list] = None
        super().__init__(**kwargs)

    def _start_round(self, round_idx: int, warm_start) -> None:
        self._source_trials = None
        if round_idx == 1:
            return
        try:
            previous = optuna.load_study(
                study_name=study_name_of(self.study_name, round_idx - 1), storage=self.rdb)
        except KeyError:  # no previous round in this storage: the centre of B
            return
        source = previous.get_trials(states=(TrialState.COMPLETE, ))
        # WS-CMA-ES fits its start to the best 10% of them: one at least
        self._source_trials = source if len(source) >= WS_CMA_MIN_TRIALS else None

    def _sampler_kwargs(self, round_idx: int, position: int) -> dict:
        kwargs = super()._sampler_kwargs(round_idx, position)
        # WS-CMA-ES sets the initial mean, step size and covariance itself
        if self._source_trials and 'sigma0' not in kwargs \
                and not kwargs.get('use_separable_cma'):
            kwargs.update(source_trials=self._source_trials)
        return kwargs

    def sampler(self, round_idx: int, position: int) -> optuna.samplers.BaseSampler:
        sampler = super().sampler(round_idx, position)
        sampler.position = position
        return sampler
