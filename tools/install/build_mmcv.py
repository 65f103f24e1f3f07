"""Build an mmcv wheel with compiled ops from the PyPI sdist.

mmcv 2.x publishes no wheels for current PyTorch, and its ``setup.py``
hard-codes ``-std=c++17`` while recent torch headers refuse anything older
than C++20. This script downloads the sdist, sets the C++ standard to the one
the *installed* torch requires (read from ``ATen/ATen.h``), and builds the
wheel without build isolation (the build needs the installed torch, and
``setup.py`` imports ``pkg_resources``).

    python tools/install/build_mmcv.py --version 2.1.0 --wheel-dir DIR
"""
import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# value of __cplusplus -> the -std flag that satisfies it
_CPP_STANDARDS = {201402: 'c++14', 201703: 'c++17', 202002: 'c++20', 202302: 'c++23'}


def required_cpp_standard(torch_include: Path) -> str:
    """Return the ``-std`` value that ``torch_include/ATen/ATen.h`` demands."""
    header = torch_include / 'ATen' / 'ATen.h'
    if not header.is_file():
        raise FileNotFoundError(f'{header} not found: is torch installed in this interpreter?')
    found = [int(v) for v in re.findall(r'__cplusplus\s*<\s*(\d{6})L', header.read_text())]
    if not found:
        return 'c++17'  # torch < 2.6 has no check; mmcv's own default
    need = max(found)
    for value, name in sorted(_CPP_STANDARDS.items()):
        if value >= need:
            return name
    raise ValueError(f'{header} requires __cplusplus >= {need}, which no known -std value '
                     'satisfies')


def patch_setup_py(setup_py: Path, std: str) -> int:
    """Replace mmcv's hard-coded C++17 flags by ``std``; return the count."""
    text = setup_py.read_text()
    new, count = re.subn(r'([-/])std([=:])c\+\+17', rf'\1std\2{std}', text)
    if count == 0:
        raise RuntimeError(f'{setup_py}: no "-std=c++17" flag found to patch; '
                           'the mmcv sdist layout changed')
    setup_py.write_text(new)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--version', default='2.1.0')
    parser.add_argument('--wheel-dir', required=True, type=Path)
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    import torch.utils.cpp_extension as cpp_ext
    std = required_cpp_standard(Path(cpp_ext.include_paths()[0]))
    args.wheel_dir.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    with tempfile.TemporaryDirectory(prefix='mmcv-build-') as tmp:
        tmp = Path(tmp)
        subprocess.run(pip + ['download', '-q', '--no-deps', '--no-binary', ':all:',
                              '--no-build-isolation', '-d', str(tmp), f'mmcv=={args.version}'],
                       check=True)
        sdists = list(tmp.glob(f'mmcv-{args.version}.tar.gz'))
        if not sdists:
            raise FileNotFoundError(f'pip download left no mmcv-{args.version}.tar.gz in {tmp}')
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(tmp, filter='data')
        src = tmp / f'mmcv-{args.version}'
        count = patch_setup_py(src / 'setup.py', std)
        print(f'[build_mmcv] torch requires {std}: patched {count} flag(s) in setup.py; '
              f'compiling with {args.jobs} job(s)', flush=True)
        env = dict(os.environ, MMCV_WITH_OPS='1', MAX_JOBS=str(args.jobs))
        subprocess.run(pip + ['wheel', '--no-build-isolation', '--no-deps', '-w',
                              str(args.wheel_dir), str(src)], check=True, env=env)
    print(f'[build_mmcv] wheel written to {args.wheel_dir}', flush=True)


if __name__ == '__main__':
    main()
