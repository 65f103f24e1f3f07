#!/usr/bin/env bash
# Create (or bring up to date) the BiPA virtual environment.
#
#   bash tools/install/setup_env.sh [VENV_DIR]        (default: .venv)
#
# Idempotent: a second run only checks that everything imports.
# Environment variables:
#   BIPA_WHEELHOUSE   a folder of prebuilt wheels that pip looks at first
#                     (--find-links), e.g. ../shared/wheels
#   BIPA_WHEEL_CACHE  where the mmcv wheel built here is kept so that the next
#                     run does not rebuild it (default ~/.cache/bipa/wheels)
#   PYTHON            the interpreter that creates the venv (default python3)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${1:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
CONSTRAINTS=$ROOT/requirements/constraints.txt
MMCV_VERSION=2.1.0
SAM2_VERSION=$(sed -n 's/^sam2==//p' "$ROOT/requirements.txt")

log() { printf '[bipa-setup] %s\n' "$*"; }

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PY=$VENV/bin/python
PYTAG=$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
TORCH_VERSION=$(sed -n 's/^torch==//p' "$CONSTRAINTS")
CACHE=${BIPA_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bipa/wheels}/torch-$TORCH_VERSION-$PYTAG
mkdir -p "$CACHE"

FIND_LINKS=(--find-links "$CACHE")
if [ -n "${BIPA_WHEELHOUSE:-}" ]; then
    [ -d "$BIPA_WHEELHOUSE" ] || { echo "BIPA_WHEELHOUSE=$BIPA_WHEELHOUSE is not a directory" >&2; exit 2; }
    FIND_LINKS=(--find-links "$BIPA_WHEELHOUSE" "${FIND_LINKS[@]}")
fi
pip_install() { "$PY" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS" "${FIND_LINKS[@]}" "$@"; }

mmcv_ops_ok() {
    "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__" >/dev/null 2>&1
}

# 1. torch (from this machine's disk where available) and the build tools.
log "torch==$TORCH_VERSION, build tools"
pip_install "torch==$TORCH_VERSION" torchvision setuptools wheel ninja

# 2. mmcv with compiled ops: a cached or offered wheel, else built from the sdist.
if ! mmcv_ops_ok; then
    if pip_install --only-binary mmcv "mmcv==$MMCV_VERSION" 2>/dev/null && mmcv_ops_ok; then
        log "mmcv $MMCV_VERSION installed from a prebuilt wheel"
    else
        "$PY" -m pip uninstall -q -y mmcv >/dev/null 2>&1 || true
        log "building mmcv $MMCV_VERSION with ops from the PyPI sdist (about 20 min on 2 cores)"
        "$PY" "$ROOT/tools/install/build_mmcv.py" --version "$MMCV_VERSION" --wheel-dir "$CACHE"
        pip_install --only-binary mmcv "mmcv==$MMCV_VERSION"  # the wheel just cached, + deps
        mmcv_ops_ok || { echo "mmcv $MMCV_VERSION was built but 'import mmcv.ops' fails" >&2; exit 1; }
    fi
fi

# 3. sam2 from its PyPI sdist, against the torch above and without its CUDA
#    extension (SAM2_BUILD_CUDA=0: only sam2's own mask post-processing calls
#    it, which BiPA does not use; BiPA runs SAM 2.1 on CPU and GPU alike).
if ! "$PY" -c "import sam2, importlib.metadata as m; assert m.version('sam2') == '$SAM2_VERSION'" >/dev/null 2>&1; then
    log "sam2==$SAM2_VERSION (without its CUDA extension)"
    SAM2_BUILD_CUDA=0 pip_install --no-build-isolation "sam2==$SAM2_VERSION"
fi

# 4. The rest of the stack, the test tools and BiPA itself (editable).
log "mmdet, mmengine, segment-anything, optuna, pycocotools, timm; bipa (editable)"
pip_install -r "$ROOT/requirements.txt" -r "$ROOT/requirements/tests.txt"
pip_install --no-deps --no-build-isolation -e "$ROOT"

"$PY" -W ignore -c "import bipa, mmdet, mmcv.ops, segment_anything, sam2, optuna, tensorboard; print('[bipa-setup] ok: torch', __import__('torch').__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__)"
