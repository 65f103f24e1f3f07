"""No module of ``bipa`` imports from a package above its own.

The packages stand in :data:`LAYERS`, from the bottom up; the modules at the
package root (``registry``, ``version``) lie below them all, and the package's
face, ``bipa/__init__.py``, above them all. Every ``import`` and
``from ... import`` counts, at module level or inside a function, relative or
absolute.
"""
import ast
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

PACKAGE = Path(__file__).resolve().parents[1] / 'bipa'

#: bipa's packages from the bottom up: each may import those below it, never
#: one above (tools/ scripts stand on top of them all)
LAYERS = ('utils', 'datasets', 'models', 'engine', 'apis', 'benchmark')


def layer(module: str) -> Optional[int]:
    """The layer of a dotted module name: 0 for the root's modules, 1.. for
    :data:`LAYERS`, the top for the package itself; None outside ``bipa``."""
    parts = module.split('.')
    if parts[0] != 'bipa':
        return None
    if len(parts) == 1:
        return len(LAYERS) + 1
    return LAYERS.index(parts[1]) + 1 if parts[1] in LAYERS else 0


def layer_name(module: str) -> str:
    number = layer(module)
    if number == 0:
        return f'the root module {module}'
    return 'bipa/__init__' if number == len(LAYERS) + 1 else LAYERS[number - 1]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports(path: Path, root: Path) -> Iterator[Tuple[int, str]]:
    """``(line, module)`` for every import of ``path``, relative ones resolved;
    ``from bipa import x`` (or ``from .. import x`` up to it) yields ``bipa.x``."""
    module = module_name(path, root)
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module
            if node.level:
                parts = package.split('.')
                base = parts[:len(parts) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            if target == 'bipa':
                yield from ((node.lineno, f'bipa.{alias.name}') for alias in node.names)
            else:
                yield node.lineno, target


def upward_imports(root: Path) -> List[str]:
    """One line per import that runs from a package to one above it."""
    found = []
    for path in sorted(root.rglob('*.py')):
        module = module_name(path, root)
        for line, target in sorted(imports(path, root)):
            if layer(target) is not None and layer(target) > layer(module):
                found.append(f'{path.relative_to(root.parent)}:{line} imports {target}: '
                             f'{layer_name(module)} -> {layer_name(target)}, a layer above')
    return found


def test_every_package_has_a_layer():
    packages = {p.parent.name for p in PACKAGE.glob('*/__init__.py')}
    assert packages == set(LAYERS), f'place {packages - set(LAYERS)} in LAYERS'


def test_no_import_runs_up_the_layers():
    found = upward_imports(PACKAGE)
    assert not found, 'imports from a package above their own:\n' + '\n'.join(found)


def test_upward_imports_are_found_in_every_form(tmp_path):
    root = tmp_path / 'bipa'
    for package in ('', 'utils', 'datasets', 'models/necks'):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / '__init__.py').write_text('')
    (root / 'utils' / 'errors.py').write_text(
        'from .config_error import ConfigError\n'       # its own package
        'from ..registry import SOLVERS\n'              # the root: below
        'def f():\n'
        '    from ..datasets import AnnotationError\n'  # lazy, relative
        '    import bipa.models.necks\n')               # lazy, absolute
    (root / 'models' / 'necks' / 'fai.py').write_text(
        'from ... import datasets, engine\n'           # bipa.datasets; bipa.engine
        'from ...apis.cli import run_cli\n'
        'import bipa\n')                                # the package's face
    assert upward_imports(root) == [
        'bipa/models/necks/fai.py:1 imports bipa.engine: models -> engine, a layer above',
        'bipa/models/necks/fai.py:2 imports bipa.apis.cli: models -> apis, a layer above',
        'bipa/models/necks/fai.py:3 imports bipa: models -> bipa/__init__, a layer above',
        'bipa/utils/errors.py:4 imports bipa.datasets: utils -> datasets, a layer above',
        'bipa/utils/errors.py:5 imports bipa.models.necks: utils -> models, a layer above',
    ]
