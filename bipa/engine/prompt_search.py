"""Upper level of BiPA: Optuna search over the dense prompt's group weights."""
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import optuna
from mmengine.logging import MMLogger
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from ..models.layers.dense_prompt import check_interval
from ..utils import ConfigError
from .optuna_compat import enqueued_params, reopen_trial, set_trial_user_attr

SAMPLERS = ('tpe', 'gp')
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
        sampler: ``'tpe'`` (multivariate TPE) or ``'gp'`` (Optuna's GP sampler).
        seed: base seed of the sampler.
        on_trial: called as ``on_trial(round, trial)`` after each finished trial.
    """

    def __init__(self, *, storage: str, study_name: str, num_groups: int,
                 interval: Sequence[float], sampler: str = 'tpe', seed: int = 0,
                 on_trial: Optional[Callable] = None) -> None:
        if sampler not in SAMPLERS:
            raise ConfigError(f'train_cfg.search.sampler must be one of {SAMPLERS}, '
                              f'got {sampler!r}')
        self.storage = storage
        self.study_name = study_name
        self.num_groups = num_groups
        self.interval = check_interval(interval, 'search interval')
        self.sampler = sampler
        self.seed = seed
        self.on_trial = on_trial
        # trials are logged through mmengine's logger (on_trial), not Optuna's
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.distributions = {self.param(g): FloatDistribution(*self.interval)
                              for g in range(num_groups)}

    @staticmethod
    def param(group: int) -> str:
        return f'w{group:02d}'

    def weights_of(self, params: dict) -> List[float]:
        return [float(params[self.param(g)]) for g in range(self.num_groups)]

    def params_of(self, weights: Sequence[float]) -> dict:
        low, high = self.interval
        return {self.param(g): min(max(float(w), low), high) for g, w in enumerate(weights)}

    def _make_sampler(self, round_idx: int, number: int) -> optuna.samplers.BaseSampler:
        seed = int(np.random.SeedSequence([self.seed, round_idx, number]).generate_state(1)[0])
        if self.sampler == 'gp':
            return optuna.samplers.GPSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)

    def study(self, round_idx: int) -> optuna.Study:
        return optuna.create_study(
            study_name=study_name_of(self.study_name, round_idx), storage=self.storage,
            direction='minimize', load_if_exists=True,
            sampler=self._make_sampler(round_idx, 0))

    def _evaluate(self, study: optuna.Study, round_idx: int, trial_number: int,
                  objective: Callable[[List[float]], float]) -> None:
        trial = study.get_trials(deepcopy=False)[trial_number]
        weights = self.weights_of(trial.params)
        try:
            value = objective(weights)
            if not math.isfinite(value):
                raise FloatingPointError(f'f is not finite ({value})')
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
        study = self.study(round_idx)
        for weights in warm_start:
            study.enqueue_trial(self.params_of(weights), skip_if_exists=True)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self._recover(study, round_idx, trial, objective)
        finished = (TrialState.COMPLETE, TrialState.FAIL)
        while True:
            interrupted = self._interrupted(study)
            trials = [t for t in study.get_trials(deepcopy=False)
                      if t.number not in interrupted]
            if sum(t.state in finished for t in trials) >= num_trials:
                break
            # seeded by the position among the trials that count, so that a
            # re-asked interrupted trial gets the same proposal
            study.sampler = self._make_sampler(round_idx, len(trials))
            trial = study.ask(self.distributions)
            self._evaluate(study, round_idx, trial.number, objective)
        return self.best(round_idx, study)

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
