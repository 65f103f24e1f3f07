"""What the prompt search needs from Optuna beyond its public API, in one place.

Finishing a trial that a killed process left RUNNING (``BaseSolver._recover``)
and recording why a trial failed work on the trial's stored record (a
``FrozenTrial``), which Optuna 3-5 give no public way to act on:

- the parameters ``Study.enqueue_trial`` fixed are the trial's system
  attribute ``'fixed_params'`` (what ``Trial.suggest_*`` reads them from);
- a live ``Trial`` for a stored one, and the storage's setters, take the
  storage's trial id, ``FrozenTrial._trial_id`` (not the trial's number);
- the storage is ``Study._storage``.

tests/test_engine/test_optuna_compat.py checks each of these on a real
in-memory study, so an Optuna release that changes one fails there, by name.
"""
from typing import Any, Optional

import optuna
from optuna.trial import FrozenTrial

ENQUEUED_PARAMS_KEY = 'fixed_params'


def enqueued_params(trial: FrozenTrial) -> Optional[dict]:
    """The parameters ``Study.enqueue_trial`` fixed for ``trial``, or None for
    a trial the sampler proposes."""
    return trial.system_attrs.get(ENQUEUED_PARAMS_KEY)


def reopen_trial(study: optuna.Study, trial: FrozenTrial) -> optuna.trial.Trial:
    """A live ``Trial`` for the stored, still RUNNING ``trial``, as ``study.ask``
    returned it: its ``suggest_*`` calls write the enqueued values. Building it
    calls the sampler's ``before_trial``."""
    return optuna.trial.Trial(study, trial._trial_id)


def set_trial_user_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """``Trial.set_user_attr`` for the stored, still RUNNING ``trial``, without
    building a live ``Trial`` (which runs the sampler's ``before_trial``)."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)
