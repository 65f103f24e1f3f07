"""Refuse a config key that no class takes, before anything is built.

mmengine builds a dict ``dict(type='X', **keys)`` as ``X(**keys)``: a typo
surfaces as ``TypeError: __init__() got an unexpected keyword argument`` deep
in the build, after the config dump, with the classes of the build chain but
not the config path (and a pipeline's transforms only when its dataloader is
first iterated). :func:`check_config` walks the config first and compares the
keys of every typed dict with the parameters of its class's ``__init__``.

Only keys that are no parameter are refused, never missing ones (a parent adds
keys to the dicts of the children it builds, e.g. ``embed_dim``). A class whose
``__init__`` takes ``**kwargs`` is followed to its base class's ``__init__``
when the only use of ``kwargs`` is ``super().__init__(..., **kwargs)``;
otherwise, like an unresolved type, it is not checked. A class may check its
own dict with a ``check_cfg(cfg)`` classmethod (``BilevelLoop`` does).
"""
import ast
import difflib
import inspect
import textwrap
from typing import Optional, Tuple

import mmengine.registry as mmengine_registry
import torch
from mmengine.config import Config
from mmengine.registry import (
    DATA_SAMPLERS,
    DATASETS,
    LOOPS,
    MODELS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    TASK_UTILS,
    TRANSFORMS,
    Registry,
)

from .config_error import ConfigError

#: keys that a builder consumes before calling the class (mmcv's build_norm_layer,
#: mmengine's optimizer wrapper constructor)
BUILDER_KEYS = {'norm_cfg': ('requires_grad', ), 'optim_wrapper': ('constructor', 'paramwise_cfg')}
#: subtrees built by something else than the class's registry
SKIPPED = ('init_cfg', )


def check_config(cfg: Config) -> None:
    """Raise :class:`ConfigError` naming the first unknown key of ``model``,
    ``optim_wrapper`` (with its optimizer), the dataloaders (their datasets,
    pipelines and samplers) and ``train_cfg`` as ``<full key>: unknown key;
    <class> takes: <its keys>``, a ``model.type`` no registry holds, or a
    ``type`` that none holds but one holds a near name of."""
    scopes = _Scoped(cfg.get('default_scope'))
    model = cfg.get('model')
    if isinstance(model, dict) and isinstance(model.get('type'), str) \
            and scopes.resolve(model['type'], (MODELS, )) is None:
        near = difflib.get_close_matches(model['type'], scopes.names(MODELS), n=1)
        raise ConfigError(f'model.type: {model["type"]!r} is not a registered model'
                          + (f'; did you mean {near[0]!r}?' if near else ''))
    for key, family in (('model', (MODELS, TASK_UTILS)), ('train_cfg', (LOOPS, )),
                        ('optim_wrapper', (OPTIM_WRAPPERS, OPTIMIZERS))):
        if isinstance(cfg.get(key), dict):
            _check(cfg[key], key, family, scopes, key)
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict):
            continue
        for key in ('sampler', 'batch_sampler'):
            if isinstance(loader.get(key), dict):
                _check(loader[key], f'{split}_dataloader.{key}', (DATA_SAMPLERS, ), scopes)
        if isinstance(loader.get('dataset'), dict):
            _check(loader['dataset'], f'{split}_dataloader.dataset', (DATASETS, ), scopes)


def _check(cfg, path: str, family: tuple, scopes: '_Scoped', name: str = '') -> None:
    """Check ``cfg`` (at ``path``, its key ``name`` in its parent) and every
    typed dict inside it."""
    if isinstance(cfg, (list, tuple)):
        for i, item in enumerate(cfg):
            _check(item, f'{path}.{i}', family, scopes, name)
        return
    if not isinstance(cfg, dict) or name in SKIPPED:
        return
    obj = scopes.resolve(cfg.get('type'), family)
    if obj is None and isinstance(cfg.get('type'), str) and not scopes.anywhere(cfg['type']):
        # types built by other means (e.g. mmcv ops by name) resolve nowhere: only a
        # near miss of a registered name is called a typo
        near = difflib.get_close_matches(cfg['type'], scopes.names(*family), n=1, cutoff=0.8)
        if near:
            raise ConfigError(f'{path}.type: {cfg["type"]!r} is not registered; did you mean '
                              f'{near[0]!r}?')
    if hasattr(obj, 'check_cfg'):
        obj.check_cfg(cfg)
    elif obj is not None:
        keys = _keys(obj)
        if keys is not None:
            extra = BUILDER_KEYS.get(name, ())
            for key in cfg:
                if key != 'type' and not key.startswith('_') and key not in keys + extra:
                    raise ConfigError(f'{path}.{key}: unknown key; {_name(obj)} takes: '
                                      f'{", ".join(keys)}')
    for key, value in cfg.items():
        child = (TRANSFORMS, ) if key in ('pipeline', 'transforms') else family
        _check(value, f'{path}.{key}', child, scopes, key)


class _Scoped:
    """The registries of a default scope (mmdet's for ``'mmdet'``, into which
    bipa registers), as ``Registry.build`` picks them."""

    def __init__(self, scope: Optional[str]) -> None:
        self.scope, self.registries = scope, {}

    def scoped(self, registry):
        """``registry`` switched to this scope (e.g. mmdet's MODELS)."""
        if registry not in self.registries:
            with registry.switch_scope_and_registry(self.scope) as scoped:
                self.registries[registry] = scoped
        return self.registries[registry]

    def names(self, *registries) -> list:
        """Every name the registries hold in this scope and its parents."""
        names = []
        for registry in registries:
            scoped = self.scoped(registry)
            while scoped is not None:
                names += list(scoped.module_dict)
                scoped = scoped.parent
        return names

    @staticmethod
    def anywhere(type_: str) -> bool:
        """Whether any registry (mmengine's roots and every scope's children)
        holds ``type_``."""
        def holds(registry) -> bool:
            return type_ in registry.module_dict or any(
                holds(child) for child in registry.children.values())
        return any(isinstance(r, Registry) and holds(r) for r in vars(mmengine_registry).values())

    def resolve(self, type_, family: tuple):
        """The class (or function) ``type_`` names in the first registry of
        ``family`` that has it; None if none."""
        if not isinstance(type_, str):
            return type_ if callable(type_) else None
        for registry in family:
            obj = self.scoped(registry).get(type_)
            if obj is not None:
                return obj
        return None


def _name(obj) -> str:
    return getattr(obj, '__name__', type(obj).__name__)


def _keys(obj) -> Optional[tuple]:
    """The keyword arguments ``obj`` takes (a class: its ``__init__``, with
    the base classes' that ``**kwargs`` is passed on to), or None when that
    cannot be known."""
    if not inspect.isclass(obj):
        return _parameters(obj, None)[0] if callable(obj) else None
    keys, mro, passed = (), obj.__mro__, (0, ())
    for cls in mro:
        if '__init__' not in cls.__dict__:
            continue
        if cls in (object, torch.nn.Module):  # take no keyword argument
            return keys
        params, forwards = _parameters(cls.__init__, cls)
        if params is None:
            return None
        # less what the subclass's super().__init__ call passes itself
        keys += tuple(p for p in params[passed[0]:] if p not in keys and p not in passed[1])
        if forwards is None:
            return keys
        passed = forwards
    return keys


def _parameters(func, cls) -> Tuple[Optional[tuple], Optional[tuple]]:
    """The keyword parameters of ``func`` (less ``self``) and, when its
    ``**kwargs`` go on to ``super().__init__`` only, what that call passes
    itself: ``(number of positional arguments, keyword names)``;
    ``(None, None)`` when ``**kwargs`` go elsewhere or the signature cannot
    be read."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None, None
    if cls is not None and params and params[0].kind != params[0].VAR_POSITIONAL:
        params = params[1:]  # self
    named = tuple(p.name for p in params
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    var = next((p.name for p in params if p.kind == p.VAR_KEYWORD), None)
    if var is None:
        return named, None
    call = _super_call_passing(func, var) if cls is not None else None
    if call is not None:
        starred = any(isinstance(a, ast.Starred) for a in call.args)  # *args: unknown count
        return named, (0 if starred else len(call.args),
                       tuple(k.arg for k in call.keywords if k.arg))
    return None, None


def _super_call_passing(func, var: str) -> Optional[ast.Call]:
    """The ``super().__init__(..., **var)`` call of ``func`` when it is the
    only use of ``**var``, else None."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(func))))
    except (OSError, TypeError, SyntaxError):
        return None
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == var]
    passed = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _is_super_init(n)
              for k in n.keywords if k.arg is None and isinstance(k.value, ast.Name)
              and k.value.id == var]
    return passed[0] if len(uses) == 1 and len(passed) == 1 else None


def _is_super_init(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == '__init__'
            and isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name)
            and func.value.func.id == 'super')

