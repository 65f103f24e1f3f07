#!/usr/bin/env bash
# BiPA's checks on a lent GPU machine (Python 3.12, torch 2.11 + CUDA, no network,
# no OpenMMLab stack), in one call:
#
#   1. install the carried wheels into /tmp/site;
#   2. print the GPU;
#   3. pytest -m cuda: mmcv's NMS, batched NMS and RoIAlign against torchvision
#      (float32, what the model uses), the model's RoI extraction of bf16 levels,
#      and a tiny BiPA train step in bf16 autocast + a predict, on the GPU;
#   4. one benchmark process on configs/bipa_uiis.py (ViT-H, random weights, bf16),
#      model built once: batch 2 (train, test, floor parts, per-module breakdown,
#      prompt search), batch 1 (train, test), one predict of a 1080x1440 image;
#   5. the summary: stages, and PASS/FAIL for mmcv vs torchvision, the tiny model,
#      peak allocated and reserved memory <= 20 GB at batch 2, train step <= 1.25 x
#      floor at batch 2, batch 1, predict masks at the original size.
# It exits 1 when a stage or a check failed.
#
# Before the call, on the development machine (.gpuwhl/ is git-ignored):
#
#   mkdir -p .gpuwhl && cp ../shared/gpu-wheels/*.whl .gpuwhl/
#   .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       -d .gpuwhl pytest pluggy iniconfig pygments   # not among that machine's packages
#
# The call (the device tool): command 'bash tools/analysis/gpu_check.sh',
# carry ['.gpuwhl'], timeout_s 480. The stages share a deadline of DEADLINE_S
# (420 s, wheel install and model build included); the summary and the archive
# take seconds after it.
#
# $OUT (default /tmp/bipa_gpu_check) gets two files: gpu_check.tar.gz (every log,
# bench.json, pytest.xml) and summary.txt.
#
# transformers: that machine has transformers 5.x, which mmdet and mmengine import
# when present, catching only ImportError. BiPA does not use it: a stub package
# that raises ImportError is put first on PYTHONPATH for every stage.
#
# Usage: bash tools/analysis/gpu_check.sh [WHEEL_DIR]   (default .gpuwhl; 'none':
# install nothing). Settings (the CPU test uses them): GPU_CHECK_DEVICE (cuda),
# GPU_CHECK_CONFIG (configs/bipa_uiis.py), GPU_CHECK_BENCH_ARGS (more benchmark
# arguments; later ones win), GPU_CHECK_PYTEST_MARK (cuda), GPU_CHECK_STAGES
# ('gpu tests bench'; the install runs unless WHEEL_DIR is 'none'), DEADLINE_S (420), OUT.
set -uo pipefail

WHEELS=${1:-.gpuwhl}
[[ -d $WHEELS ]] && WHEELS=$(cd "$WHEELS" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/../.."  # the repository root
DEVICE=${GPU_CHECK_DEVICE:-cuda}
CONFIG=${GPU_CHECK_CONFIG:-configs/bipa_uiis.py}
MARK=${GPU_CHECK_PYTEST_MARK:-cuda}
STAGES=" install ${GPU_CHECK_STAGES:-gpu tests bench} "
DEADLINE_S=${DEADLINE_S:-420}
OUT_DIR=${OUT:-/tmp/bipa_gpu_check}
read -r -a BENCH_ARGS <<< "${GPU_CHECK_BENCH_ARGS:-}"

TMP=$(mktemp -d)
LOGS=$TMP/gpu_check  # archived at the end
mkdir -p "$LOGS" "$OUT_DIR" "$TMP/no_transformers/transformers"
echo "raise ImportError('transformers is hidden by tools/analysis/gpu_check.sh')" \
    > "$TMP/no_transformers/transformers/__init__.py"
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
PYTHONPATH=$TMP/no_transformers:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONPATH
FAILED=0
: > "$LOGS/stages.txt"

# stage NAME MAX_S CMD...: run CMD for at most MAX_S seconds (never past the
# deadline), log to $LOGS/NAME.log, record its status
stage() {
    local name=$1 max_s=$2 start=$SECONDS status rc
    shift 2
    if [[ $STAGES != *" $name "* ]]; then
        return
    fi
    (( DEADLINE_S - SECONDS < max_s )) && max_s=$((DEADLINE_S - SECONDS))
    echo "=== $name (limit ${max_s}s)"
    if (( max_s < 5 )); then
        status='FAILED (no time left)'
    else
        timeout --kill-after=10 "$max_s" "$@" 2>&1 | tee "$LOGS/$name.log"
        rc=${PIPESTATUS[0]}
        case $rc in
            0) status=OK ;;
            124 | 137) status="FAILED (timeout ${max_s}s)" ;;
            *) status="FAILED (exit $rc)" ;;
        esac
    fi
    [[ $status == OK ]] || FAILED=1
    printf '%-8s %-24s %4ss\n' "$name" "$status" "$((SECONDS - start))" | tee -a "$LOGS/stages.txt"
}

# check NAME OK DETAIL: one PASS/FAIL line of the summary
check() {
    [[ $2 == 1 ]] || FAILED=1
    printf '%s  %s: %s\n' "$([[ $2 == 1 ]] && echo PASS || echo FAIL)" "$1" "$3" \
        >> "$LOGS/checks.txt"
}

# pytest_check NAME FILE: PASS when FILE's tests on $DEVICE ran and none failed
pytest_check() {
    local passed failed log=$LOGS/tests.log
    if [[ ! -f $log ]]; then
        check "$1" 0 'the tests stage did not run'
        return
    fi
    passed=$(grep -cE "^PASSED $2::.*[[-]$DEVICE[]-]" "$log")
    failed=$(grep -cE "^(FAILED|ERROR) $2" "$log")
    check "$1" "$(( passed > 0 && failed == 0 ))" "$passed passed, $failed failed ($2)"
}

if [[ $WHEELS != none ]]; then
    stage install 150 python3 -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --target /tmp/site "$WHEELS"/*.whl
    PYTHONPATH=$TMP/no_transformers:/tmp/site:${PYTHONPATH#*:}  # after the stub
fi
stage gpu 30 nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
stage tests 150 python3 -m pytest -m "$MARK" -rA -p no:cacheprovider \
    --junitxml="$LOGS/pytest.xml" tests/test_install/test_mmcv_ops.py \
    tests/test_models/test_cuda.py
stage bench 330 python3 tools/analysis/benchmark.py "$CONFIG" --device "$DEVICE" \
    --batch-size 2 1 --steps 5 --warmup 2 --parts --breakdown --search --predict 1080 1440 \
    --targets --json "$LOGS/bench.json" --summary "$LOGS/bench_summary.txt" "${BENCH_ARGS[@]}"

: > "$LOGS/checks.txt"
pytest_check "mmcv ops (NMS, batched NMS, RoIAlign; fp32) on $DEVICE match torchvision" \
    tests/test_install/test_mmcv_ops.py
pytest_check "tiny BiPA on $DEVICE: bf16 levels to RoIAlign, train step, predict" \
    tests/test_models/test_cuda.py
if [[ -s $LOGS/bench_summary.txt ]]; then  # the benchmark's own PASS/FAIL lines
    grep -E '^(PASS|FAIL)  ' "$LOGS/bench_summary.txt" >> "$LOGS/checks.txt"
else
    check 'benchmark' 0 "no report (see bench.log)"
fi
grep -q '^FAIL' "$LOGS/checks.txt" && FAILED=1

{
    echo "BiPA GPU check: $CONFIG on $DEVICE, $(date -u '+%Y-%m-%d %H:%M UTC'), ${SECONDS}s"
    echo
    cat "$LOGS/stages.txt"
    [[ -s $LOGS/bench_summary.txt ]] && { echo; grep -vE '^(PASS|FAIL)  ' \
        "$LOGS/bench_summary.txt"; }
    echo
    cat "$LOGS/checks.txt"
    echo
    (( FAILED )) && echo 'RESULT: FAILED' || echo 'RESULT: OK'
} > "$LOGS/summary.txt"
tar -czf "$OUT_DIR/gpu_check.tar.gz" -C "$TMP" gpu_check
cp "$LOGS/summary.txt" "$OUT_DIR/summary.txt"
echo
cat "$OUT_DIR/summary.txt"
rm -rf "$TMP"
exit "$FAILED"
