"""Read a BiPA prompt search back from its Optuna storage: per round, f at
the identity prompt, the best f and the rho weights that gave it, and why
each failed trial failed (:func:`fail_reasons`)."""
import os.path as osp
import re
from typing import Dict, List

import optuna
from optuna.trial import TrialState

from ..engine.solvers import best_trial, fail_reasons

__all__ = ['best_trial', 'fail_reasons', 'load_rounds', 'storage_url', 'summarize_rounds']


def storage_url(storage: str) -> str:
    """An Optuna URL for a path to a SQLite file, or the URL itself."""
    if '://' in storage:
        return storage
    if not osp.isfile(storage):
        raise FileNotFoundError(f'study database not found: {storage}')
    return 'sqlite:///' + osp.abspath(storage)


def load_rounds(storage: str, prefix: str = 'prompt_search') -> Dict[int, optuna.Study]:
    """The studies ``{prefix}-round<N>`` of ``storage``, by round."""
    storage = storage_url(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pattern = re.compile(rf'^{re.escape(prefix)}-round(\d+)$')
    rounds = {}
    for summary in optuna.get_all_study_summaries(storage):
        match = pattern.match(summary.study_name)
        if match:
            rounds[int(match.group(1))] = optuna.load_study(
                study_name=summary.study_name, storage=storage)
    if not rounds:
        raise ValueError(f'no study named {prefix}-round<N> in {storage}')
    return dict(sorted(rounds.items()))


def _weights(trial) -> List[float]:
    return [float(trial.params[k]) for k in sorted(trial.params)]


def summarize_rounds(storage: str, prefix: str = 'prompt_search') -> List[dict]:
    """One dict per round: ``round``, ``trials`` (COMPLETE ones), ``f_identity``
    (f of the trial with every weight 1, ``None`` when the interval excludes
    it), ``f_best``, ``rho`` (the best trial's weights) and ``identity_best``."""
    out = []
    for round_idx, study in load_rounds(storage, prefix).items():
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, ))
        identity = [t for t in complete if all(abs(w - 1.0) < 1e-9 for w in _weights(t))]
        best = best_trial(study)
        f_identity = identity[0].value if identity else None
        identity_best = best is not None and identity and best.number == identity[0].number
        out.append(dict(
            round=round_idx, trials=len(complete), f_identity=f_identity,
            f_best=None if best is None else best.value,
            rho=None if best is None else _weights(best), identity_best=bool(identity_best)))
    return out
