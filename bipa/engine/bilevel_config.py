"""Typed sub-configurations of ``train_cfg`` for :class:`BilevelLoop`."""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..utils import ConfigError

Check = Callable[[Any], bool]


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _non_negative_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _optional(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _list_of_dicts(v) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(t, dict) for t in v)


def _checked(expected: str, check: Check, **kwargs):
    """A dataclass field whose value must pass ``check`` (``expected`` names it
    in the error)."""
    return field(metadata=dict(expected=expected, check=check), **kwargs)


class _TypedConfig:
    """``from_cfg`` builds the dataclass from a config dict: an unknown key or a
    value of the wrong kind stops the run with the key named."""

    KEY = ''

    @classmethod
    def from_cfg(cls, cfg: Optional[dict]):
        cfg = dict(cfg or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ConfigError(f'{cls.KEY} has unknown key(s) {unknown}; expected some of '
                              f'{known}')
        for f in dataclasses.fields(cls):
            if f.name in cfg and not f.metadata['check'](cfg[f.name]):
                raise ConfigError(f'{cls.KEY}.{f.name} must be {f.metadata["expected"]}, '
                                  f'got {cfg[f.name]!r}')
        return cls(**cfg)


@dataclass(frozen=True)
class SearchConfig(_TypedConfig):
    """``train_cfg.search``: how the upper level reads D_val and samples rho."""

    KEY = 'train_cfg.search'

    #: D_val's pipeline (GT loaded before resizing); None: val_dataloader's,
    #: with its LoadAnnotations moved right after the image is loaded
    pipeline: Optional[list] = _checked('a list of transform dicts or None',
                                        _optional(_list_of_dicts), default=None)
    batch_size: int = _checked('a positive integer', _positive_int, default=1)
    num_workers: int = _checked('a non-negative integer', _non_negative_int, default=0)
    #: 'tpe' or 'gp' (checked by PromptSearch)
    sampler: str = _checked('a string', lambda v: isinstance(v, str), default='tpe')
    seed: int = _checked('a non-negative integer', _non_negative_int, default=0)
    #: an Optuna storage URL; None: SQLite prompt_search.db in the work dir
    storage: Optional[str] = _checked('a storage URL or None',
                                      _optional(lambda v: isinstance(v, str)), default=None)
    study_name: str = _checked('a non-empty string', lambda v: isinstance(v, str) and v != '',
                               default='prompt_search')
    #: keep the frozen encoder's features of D_val across a round's trials
    cache: bool = _checked('True or False', lambda v: isinstance(v, bool), default=True)


@dataclass(frozen=True)
class FinetuneConfig(_TypedConfig):
    """``train_cfg.finetune``: the fine-tuning phase's learning rate and
    optimizer state."""

    KEY = 'train_cfg.finetune'

    #: the paper's eta-bar_omega; None: each group restarts at its initial rate
    lr: Optional[float] = _checked(
        'a positive number or None',
        _optional(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0),
        default=None)
    #: schedulers counted from the phase's start (mmengine's param_scheduler format)
    param_scheduler: list = _checked('a list of scheduler dicts', _list_of_dicts,
                                     default_factory=list)
    #: clear the optimizer's state (AdamW's moments and step counts) when the
    #: phase starts, as the authors' separate stage-2 run starts a fresh optimizer
    reset_optimizer: bool = _checked('True or False', lambda v: isinstance(v, bool),
                                     default=False)
