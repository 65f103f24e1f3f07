"""Gradient-based upper level: projected Adam on rho's group weights."""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from ...registry import SOLVERS
from ...utils import ConfigError
from .base_solver import BaseSolver

#: the user attribute holding df/dw of a trial's point
GRAD = 'grad'


class _ProjectedAdam:
    """Adam on a box: a step, then clipping to ``[low, high]``."""

    def __init__(self, lr: float, betas: Tuple[float, float], eps: float,
                 low: float, high: float) -> None:
        self.lr, self.betas, self.eps, self.low, self.high = lr, betas, eps, low, high
        self.restart(lr)

    def restart(self, lr: float) -> None:
        self.lr, self.t, self.m, self.v = lr, 0, 0.0, 0.0

    def step(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        b1, b2 = self.betas
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat = self.m / (1 - b1 ** self.t)
        v_hat = self.v / (1 - b2 ** self.t)
        return np.clip(x - self.lr * m_hat / (np.sqrt(v_hat) + self.eps), self.low, self.high)


@SOLVERS.register_module(name='gradient')
class GradientSolver(BaseSolver):
    """The upper level by gradient: with w fixed, f depends on rho only through
    the frozen decoder, so ``objective.value_and_grad`` gives df/dw exactly
    (:meth:`MaskObjective.value_and_grad`).

    A round evaluates the warm-start points (duplicates once), then runs
    projected Adam from the best of them: each later trial is the step from the
    last point that completed. A failed trial sends the search back to the best
    point so far with the step size halved and Adam's moments cleared. Every
    point is an Optuna trial of the round's study (its gradient in the user
    attribute ``grad``), so the budget is ``K_b`` evaluations of f (each with a
    backward pass through the decoder), the storage and its failed-trial
    handling are :class:`BaseSolver`'s, and the trajectory is replayed from
    the study's trials (:meth:`next_point`): a run killed at any point resumes
    to the same trials.

    Args:
        lr: Adam's step size, in group-weight units (default 0.1).
        betas: Adam's (0.9, 0.999).
        eps: Adam's (1e-8).
        The others: :class:`BaseSolver`'s.
    """

    needs_gradient = True
    explores = 'local'

    def __init__(self, *, storage, study_name: str, num_groups: int,
                 interval: Sequence[float], seed: int = 0,
                 on_trial: Optional[Callable] = None, **adam) -> None:
        super().__init__(storage=storage, study_name=study_name, num_groups=num_groups,
                         interval=interval, seed=seed, on_trial=on_trial)
        self.optimizer = self.check_settings(adam)

    @classmethod
    def check_settings(cls, settings: dict) -> dict:
        """Adam's ``lr`` (in group-weight units), ``betas`` and ``eps``."""
        out = dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8)
        unknown = sorted(set(settings) - set(out))
        if unknown:
            raise ConfigError(f'train_cfg.search.solver_kwargs.{unknown[0]}: unknown key; the '
                              f'gradient solver takes {", ".join(out)}')
        out.update(settings)
        lr, betas, eps = out['lr'], out['betas'], out['eps']
        key = 'train_cfg.search.solver_kwargs'
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
            raise ConfigError(f'{key}.lr must be a positive number, got {lr!r}')
        if not (isinstance(betas, (list, tuple)) and len(betas) == 2
                and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
            raise ConfigError(f'{key}.betas must be two numbers in [0, 1), got {betas!r}')
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ConfigError(f'{key}.eps must be a positive number, got {eps!r}')
        return dict(lr=float(lr), betas=tuple(float(b) for b in betas), eps=float(eps))

    def _score(self, objective: Callable, weights: List[float]) -> Tuple[float, dict]:
        value, grad = objective.value_and_grad(weights)
        return value, {GRAD: [float(g) for g in grad]}

    def _point(self, trial: FrozenTrial) -> Tuple[np.ndarray, np.ndarray]:
        return (np.array(self.weights_of(trial.params)),
                np.array(trial.user_attrs[GRAD], dtype=np.float64))

    def next_point(self, finished: Sequence[FrozenTrial],
                   warm_start: Sequence[Sequence[float]]) -> List[float]:
        """The point of the next trial, from the finished trials (in order) and
        the warm-start points: a pure function of them, so that a resumed
        round proposes what an uninterrupted one would have."""
        warm = []
        for weights in warm_start:
            params = self.params_of(weights)
            if params not in warm:
                warm.append(params)
        if len(finished) < len(warm):
            return self.weights_of(warm[len(finished)])
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        started = [t for t in finished[:len(warm)] if t.state == TrialState.COMPLETE]
        if not started:
            raise RuntimeError('gradient search: no warm-start point could be scored (why: '
                               "the trials' user attribute 'fail_reason')")
        best = min(started, key=lambda t: (t.value, t.number))
        x, grad = self._point(best)
        low, high = self.interval
        adam = _ProjectedAdam(**self.optimizer, low=low, high=high)
        for trial in finished[len(warm):]:
            adam.step(x, grad)  # the step that proposed this trial
            if trial.state == TrialState.COMPLETE:
                x, grad = self._point(trial)
            else:
                incumbent = min((t for t in complete if t.number < trial.number),
                                key=lambda t: (t.value, t.number))
                x, grad = self._point(incumbent)
                adam.restart(adam.lr / 2)
        return adam.step(x, grad).tolist()

    def _start_round(self, round_idx: int, warm_start) -> None:
        if not warm_start:
            raise ValueError('the gradient search starts from its warm-start points: give one '
                             'at least (the loop gives the previous best and the identity)')
