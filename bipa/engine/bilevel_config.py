"""``train_cfg`` of :class:`BilevelLoop`, typed: every key checked in one place."""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from ..models.layers.dense_prompt import DENSE_PROMPT_MODES
from ..registry import SOLVERS
from ..utils import ConfigError
from .prompt_objective import DIFFERENTIABLE, OBJECTIVES
from .solvers import BaseSolver

Check = Callable[[Any], bool]
UNITS = ('iter', 'epoch')
STOPPABLE = ('SIGTERM', 'SIGUSR1', 'SIGUSR2', 'SIGINT')


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _non_negative_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _optional(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _one_of(choices: tuple) -> Check:
    return lambda v: isinstance(v, (str, type(None))) and v in choices


def _list_of_dicts(v) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(t, dict) for t in v)


def _checked(expected: Union[str, Callable[[], str]], check: Check, **kwargs):
    """A dataclass field whose value must pass ``check`` (``expected``, or what
    it returns, names it in the error)."""
    return field(metadata=dict(expected=expected, check=check), **kwargs)


def _nested(config: type):
    """A field holding a sub-configuration, given as a dict (or None: its
    defaults) and built by ``config.from_cfg``."""
    return field(metadata=dict(nested=config), default_factory=config)


class _TypedConfig:
    """``from_cfg`` builds the dataclass from a config dict: an unknown key or a
    value of the wrong kind stops the run with the key named."""

    KEY = ''
    #: keys of earlier versions: what replaced them
    RENAMED: dict = {}

    @classmethod
    def from_cfg(cls, cfg: Optional[dict]):
        cfg = dict(cfg or {})
        known = cls.keys()
        unknown = sorted(set(cfg) - set(known))
        for key in unknown:
            if key in cls.RENAMED:
                raise ConfigError(f'{cls.KEY}.{key}: no longer a key; {cls.RENAMED[key]}')
        if unknown:
            raise ConfigError(f'{cls.KEY}.{unknown[0]}: unknown key; {cls.KEY} has unknown '
                              f'key(s) {unknown} and takes: {", ".join(known)}')
        for f in dataclasses.fields(cls):
            if f.name not in cfg:
                continue
            if 'nested' in f.metadata:
                cfg[f.name] = f.metadata['nested'].from_cfg(cfg[f.name])
            elif not f.metadata['check'](cfg[f.name]):
                expected = f.metadata['expected']
                expected = expected() if callable(expected) else expected
                raise ConfigError(f'{cls.KEY}.{f.name} must be {expected}, got {cfg[f.name]!r}')
        return cls(**cfg)

    @classmethod
    def keys(cls) -> list:
        """The keys the config may have, in the order of the fields."""
        return [f.name for f in dataclasses.fields(cls)]


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
    #: the solver: a name registered in bipa.registry.SOLVERS ('tpe' is the
    #: paper's; 'gp', 'cmaes', 'random', 'gradient', or one of your own)
    solver: str = _checked(
        lambda: f'one of the registered solvers {tuple(sorted(SOLVERS.module_dict))}',
        lambda v: isinstance(v, str) and v in SOLVERS, default='tpe')
    #: the solver's keyword arguments (its check_settings says which)
    solver_kwargs: dict = _checked('a dict', lambda v: isinstance(v, dict),
                                   default_factory=dict)
    #: f: one of OBJECTIVES ('bce' is the paper's)
    objective: str = _checked(f'one of {OBJECTIVES}', _one_of(OBJECTIVES), default='bce')
    seed: int = _checked('a non-negative integer', _non_negative_int, default=0)
    #: an Optuna storage URL; None: SQLite prompt_search.db in the work dir
    storage: Optional[str] = _checked('a storage URL or None',
                                      _optional(lambda v: isinstance(v, str)), default=None)
    study_name: str = _checked('a non-empty string', lambda v: isinstance(v, str) and v != '',
                               default='prompt_search')
    #: keep the frozen encoder's features of D_val across a round's trials
    cache: bool = _checked('True or False', lambda v: isinstance(v, bool), default=True)

    RENAMED = {
        'method': "train_cfg.search.solver names the solver (e.g. 'gradient')",
        'sampler': "train_cfg.search.solver names the solver (e.g. 'gp')",
        'sampler_kwargs': "the sampler's keywords are train_cfg.search.solver_kwargs",
        'optimizer': "the gradient solver's lr, betas and eps are train_cfg.search.solver_kwargs",
    }

    def __post_init__(self) -> None:
        solver = SOLVERS.get(self.solver)
        solver.check_settings(self.solver_kwargs)
        if not solver.can_use(self.objective):
            raise ConfigError(f'train_cfg.search.objective={self.objective!r} has no gradient; '
                              f'the solver {self.solver!r} needs one of {DIFFERENTIABLE}')

    def build(self, *, num_groups: int, interval, storage=None,
              on_trial: Optional[Callable] = None) -> BaseSolver:
        """The solver this config chooses, in ``storage`` (a URL or an Optuna
        storage; default: ``self.storage``)."""
        return SOLVERS.get(self.solver)(
            storage=self.storage if storage is None else storage, study_name=self.study_name,
            num_groups=num_groups, interval=interval, seed=self.seed, on_trial=on_trial,
            **self.solver_kwargs)


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


@dataclass(frozen=True)
class BilevelConfig(_TypedConfig):
    """``train_cfg`` of :class:`BilevelLoop` (all but ``type``); the loop's
    docstring says what each key does."""

    KEY = 'train_cfg'

    T: int = _checked('a positive integer', _positive_int, default=3)
    K_a: int = _checked('a positive integer', _positive_int, default=30)
    K_b: int = _checked('a non-negative integer', _non_negative_int, default=21)
    K_c: int = _checked('a non-negative integer', _non_negative_int, default=7)
    unit: str = _checked(f'one of {UNITS}', _one_of(UNITS), default='epoch')
    #: None: the model's dense prompt mode, which a value must equal
    strategy: Optional[str] = _checked(f'one of {DENSE_PROMPT_MODES} or None',
                                       _one_of(DENSE_PROMPT_MODES + (None, )), default=None)
    adaptation_only: bool = _checked('True or False', lambda v: isinstance(v, bool),
                                     default=False)
    #: D_val held out of the training dataset (HoldoutSplit's fraction/count, seed)
    holdout: Optional[dict] = _checked('a dict (HoldoutSplit keys) or None',
                                       _optional(lambda v: isinstance(v, dict)),
                                       default_factory=lambda: dict(fraction=0.1, seed=0))
    #: D_val from a dataloader of the config (e.g. 'val_dataloader')
    val_split: Optional[str] = _checked('the name of a dataloader or None',
                                        _optional(lambda v: isinstance(v, str)), default=None)
    search: SearchConfig = _nested(SearchConfig)
    finetune: FinetuneConfig = _nested(FinetuneConfig)
    val_begin: int = _checked('an integer', _int, default=1)
    val_interval: int = _checked('a positive integer', _positive_int, default=1000)
    dynamic_intervals: Optional[list] = _checked(
        'a list of (iteration, interval) pairs or None',
        _optional(lambda v: isinstance(v, (list, tuple))), default=None)
    #: signals that stop training after the current iteration or trial, with a checkpoint
    stop_signals: tuple = _checked(
        f'a list of signal names among {STOPPABLE}',
        lambda v: isinstance(v, (list, tuple)) and all(s in STOPPABLE for s in v),
        default=('SIGTERM', ))

    def __post_init__(self) -> None:
        if self.holdout is not None and self.val_split is not None:
            raise ConfigError('train_cfg.holdout and train_cfg.val_split both choose D_val: '
                              'set one of them to None')

    def check_strategy(self, strategy: str, dataloader_is_cfg: bool) -> None:
        """What the strategy (the model's dense prompt mode) needs: the search's
        trials and D_val."""
        if strategy != 'bilevel':
            return
        if self.K_b == 0:
            raise ConfigError("train_cfg.K_b must be positive for strategy 'bilevel'")
        if self.holdout is None and self.val_split is None or not dataloader_is_cfg:
            raise ConfigError("train_cfg.strategy='bilevel' needs D_val: train_cfg.holdout "
                              '(held out of the training annotations) or train_cfg.val_split '
                              '(a dataloader of the config, e.g. val_dataloader), and a '
                              'dataloader config')
