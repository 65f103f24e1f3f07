#!/usr/bin/env bash
# One-shot check of BiPA on a lent GPU machine (no internet; torch preinstalled):
#
#   bash tools/analysis/gpu_check.sh WHEEL_DIR
#
# 1. installs the carried wheels from WHEEL_DIR (mmcv, mmdet, mmengine,
#    segment_anything, optuna, pycocotools, ...) into /tmp/site;
# 2. prints the GPU (nvidia-smi) and checks that bipa imports;
# 3. checks mmcv's CUDA ops (nms, batched_nms, RoIAlign) against torchvision
#    on the GPU;
# 4. runs tools/analysis/benchmark.py on configs/bipa_uiis.py (ViT-H, random
#    init, bf16) with --parts at batch 2 (plus --search) and at batch 1;
# 5. runs one predict (test_step) and checks the masks come back at the
#    original image size;
# 6. prints a summary table (and the issue's targets: peak <= 20 GB at batch 2,
#    step <= 1.25 x floor).
#
# Every stage runs under `timeout`, capped by a global deadline, so the script
# ends in under 6 minutes; a failed or timed-out stage is recorded as FAILED and
# the script goes on to the summary. Results (JSON, logs) go to $RESULTS_DIR
# (default: $OUT if set, else /tmp/bipa_gpu_check).
# Knobs: STEPS (5), WARMUP (2), DEADLINE_S (330, for all stages together).
set -euo pipefail

if [[ $# -ne 1 || ! -d "$1" ]]; then
    echo "usage: $0 WHEEL_DIR" >&2
    exit 2
fi
WHEEL_DIR=$(cd "$1" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/../.."  # the repository root
RESULTS_DIR=${RESULTS_DIR:-${OUT:-/tmp/bipa_gpu_check}}
mkdir -p "$RESULTS_DIR"
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-2}
DEADLINE_S=${DEADLINE_S:-330}
CONFIG=configs/bipa_uiis.py
STATUS_FILE="$RESULTS_DIR/stages.tsv"
: > "$STATUS_FILE"
rm -f "$RESULTS_DIR"/bench_*.json "$RESULTS_DIR"/predict.json
export PYTHONUNBUFFERED=1

# run_stage NAME MAX_SECONDS CMD...: run CMD under timeout (at most MAX_SECONDS
# and never past the deadline), log to $RESULTS_DIR/NAME.log and record its status.
run_stage() {
    local name=$1 max_s=$2 left status rc start
    shift 2
    left=$((DEADLINE_S - SECONDS))
    (( left < max_s )) && max_s=$left
    start=$SECONDS
    echo
    echo "=== $name (limit ${max_s}s)"
    if (( max_s < 10 )); then
        status="SKIPPED (deadline)"
    else
        set +e
        timeout --kill-after=10 "$max_s" "$@" 2>&1 | tee "$RESULTS_DIR/$name.log"
        rc=${PIPESTATUS[0]}
        set -e
        if (( rc == 0 )); then
            status=OK
        elif (( rc == 124 || rc == 137 )); then
            status="FAILED (timeout ${max_s}s)"
        else
            status="FAILED (rc $rc)"
        fi
    fi
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" >> "$STATUS_FILE"
    echo "=== $name: $status in $((SECONDS - start))s"
}

# --- 1. wheels -----------------------------------------------------------------
echo "=== install wheels from $WHEEL_DIR"
ls -1 "$WHEEL_DIR"/*.whl || true
start=$SECONDS
if timeout 120 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$WHEEL_DIR"/*.whl && export PYTHONPATH=/tmp/site:$PWD; then
    printf 'install\tOK\t%s\n' "$((SECONDS - start))" >> "$STATUS_FILE"
else
    printf 'install\tFAILED\t%s\n' "$((SECONDS - start))" >> "$STATUS_FILE"
    export PYTHONPATH=/tmp/site:$PWD
fi

# --- 2. machine and imports ------------------------------------------------------
echo "=== GPU"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv || true

run_stage imports 60 python3 - <<'EOF'
import importlib
import sys
import torch
print(f'python {sys.version.split()[0]}, torch {torch.__version__}, '
      f'cuda {torch.version.cuda}, available {torch.cuda.is_available()}, '
      f'{torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"}')
for name in ('torchvision', 'mmcv', 'mmengine', 'mmdet', 'segment_anything', 'optuna',
             'pycocotools'):
    try:
        mod = importlib.import_module(name)
        print(f'{name:18s} {getattr(mod, "__version__", "?"):12s} {mod.__file__}')
    except Exception as e:  # report every missing piece, then fail below
        print(f'{name:18s} FAILED: {type(e).__name__}: {e}')
import bipa  # must import without SAM weights (they are read only by init_weights)
from mmcv.ops import get_compiling_cuda_version, get_compiler_version
print(f'bipa {bipa.__version__} from {bipa.__file__}')
print(f'mmcv ops compiled with CUDA {get_compiling_cuda_version()}, {get_compiler_version()}')
print('pycocotools imported by bipa:', 'pycocotools' in sys.modules)
assert torch.cuda.is_available(), 'no CUDA device'
EOF

# --- 3. mmcv CUDA ops against torchvision ------------------------------------------
run_stage mmcv_ops 60 python3 - <<'EOF'
import torch
import torchvision.ops as tv
from mmcv.ops import RoIAlign, batched_nms, nms

dev = torch.device('cuda')
g = torch.Generator(device='cpu').manual_seed(0)
failed = []


def boxes(n, size=200.0):
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], 1).to(dev), torch.rand(n, generator=g).to(dev)


def report(name, ok, detail=''):
    print(f'{name:34s} {"OK" if ok else "MISMATCH"} {detail}')
    if not ok:
        failed.append(name)


for iou in (0.3, 0.5, 0.7):
    b, s = boxes(1000)
    dets, keep = nms(b, s, iou)
    ref = tv.nms(b, s, iou)
    report(f'nms iou={iou}', keep.is_cuda and torch.equal(keep, ref),
           f'({keep.numel()} kept, device {keep.device})')
b, s = boxes(2000)
idxs = torch.randint(0, 7, (2000,), generator=g).to(dev)
dets, keep = batched_nms(b, s, idxs, dict(type='nms', iou_threshold=0.5))
ref = tv.batched_nms(b, s, idxs, 0.5)
report('batched_nms iou=0.5', torch.equal(keep.sort().values, ref.sort().values),
       f'({keep.numel()} kept)')
dets, keep = batched_nms(b, s, idxs, dict(type='nms', iou_threshold=0.5, split_thr=100))
report('batched_nms split_thr=100', torch.equal(keep.sort().values, ref.sort().values))
feats = torch.randn(2, 64, 64, 64, generator=g).to(dev)
b, _ = boxes(300, size=250)
rois = torch.cat([torch.randint(0, 2, (300, 1), generator=g).float().to(dev), b], 1)
for aligned in (True, False):
    for ratio in (0, 2):
        ours = RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=ratio,
                        aligned=aligned)(feats, rois)
        ref = tv.roi_align(feats, rois, (7, 7), spatial_scale=0.25, sampling_ratio=ratio,
                           aligned=aligned)
        err = (ours - ref).abs().max().item()
        report(f'RoIAlign aligned={aligned} ratio={ratio}',
               ours.is_cuda and torch.allclose(ours, ref, rtol=1e-4, atol=1e-4),
               f'(max abs err {err:.2e})')
# under bf16 autocast the FPN levels (and so the RoIs, type_as) are bf16; mmcv 2.1's
# kernels dispatch on float/double/half only
for name, fn in (
        ('RoIAlign bf16 (bf16 AMP step needs it)',
         lambda: RoIAlign((14, 14), spatial_scale=0.25, sampling_ratio=0)(
             feats.bfloat16(), rois.bfloat16())),
        ('RoIAlign fp16', lambda: RoIAlign((14, 14), spatial_scale=0.25, sampling_ratio=0)(
            feats.half(), rois.half()))):
    try:
        out = fn()
        report(name, bool(torch.isfinite(out.float()).all()), f'({out.dtype})')
    except RuntimeError as e:
        report(name, False, f'NOT SUPPORTED: {str(e).splitlines()[0]}')
assert not failed, f'mismatches: {failed}'
EOF

# --- 4. benchmarks -------------------------------------------------------------------
BENCH=(python3 tools/analysis/benchmark.py "$CONFIG" --device cuda --steps "$STEPS"
       --warmup "$WARMUP" --parts)
run_stage bench_b2 150 "${BENCH[@]}" --batch-size 2 --search --json "$RESULTS_DIR/bench_b2.json"
if [[ ! -f "$RESULTS_DIR/bench_b2.json" ]] \
        && grep -q "not implemented for 'BFloat16'" "$RESULTS_DIR/bench_b2.log"; then
    # mmcv's CUDA kernels lack bf16: get the numbers with fp16 AMP instead (same
    # width, same memory and nearly the same speed), and say so in the summary
    run_stage bench_b2_fp16 120 "${BENCH[@]}" --batch-size 2 \
        --cfg-options optim_wrapper.dtype=float16 --json "$RESULTS_DIR/bench_b2_fp16.json"
fi
run_stage bench_b1 100 "${BENCH[@]}" --batch-size 1 --json "$RESULTS_DIR/bench_b1.json"

# --- 5. one predict at the original size --------------------------------------------
run_stage predict 75 python3 - "$CONFIG" "$RESULTS_DIR/predict.json" <<'EOF'
import importlib.util
import json
import sys

import torch

config, out = sys.argv[1:3]
spec = importlib.util.spec_from_file_location('bipa_benchmark', 'tools/analysis/benchmark.py')
bm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bm)
args = bm.parse_args([config])
cfg = bm.load_config(args)
device = torch.device('cuda')
model, _ = bm.build_model(cfg, device)
model.eval()
size = bm.input_size_of(cfg, None)
# a 1440x1080 photo resized (keep ratio) to 1024x768 and padded to 1024x1024
batch = bm.make_batch(1, size, num_classes=model.roi_head.bbox_head.num_classes,
                      img_shape=(768, 1024), ori_shape=(1080, 1440))
with torch.no_grad():
    result = model.test_step(batch)[0]
pred = result.pred_instances
n = len(pred)
shape = tuple(pred.masks.shape)
ok = (shape[-2:] == (1080, 1440) and pred.masks.dtype == torch.bool
      and pred.bboxes.shape == (n, 4) and pred.scores.shape == (n,))
if n:
    ok = ok and float(pred.bboxes[:, 2].max()) <= 1440 + 1 and float(pred.bboxes[:, 3].max()) <= 1080 + 1
summary = dict(ok=bool(ok), detections=n, masks_shape=list(shape), ori_shape=[1080, 1440],
               mask_dtype=str(pred.masks.dtype))
print(summary)
json.dump(summary, open(out, 'w'))
assert ok, 'predictions are not at the original image size'
EOF

# --- 6. summary ------------------------------------------------------------------------
echo
echo "=== summary (${SECONDS}s)"
python3 - "$RESULTS_DIR" <<'EOF' || cat "$RESULTS_DIR/stages.tsv"
import json
import os
import sys

root = sys.argv[1]
stages = [line.rstrip('\n').split('\t') for line in open(os.path.join(root, 'stages.tsv'))]
print(f'{"stage":10s} {"status":26s} {"time":>6s}')
for name, status, secs in stages:
    print(f'{name:10s} {status:26s} {secs:>5s}s')


def load(name):
    path = os.path.join(root, name)
    return json.load(open(path)) if os.path.exists(path) else None


print()
print(f'{"run":7s} {"step ms":>8s} {"img/s":>6s} {"peak GiB":>8s} {"floor ms":>8s} '
      f'{"step/floor":>10s} {"enc ms":>7s} {"r50 ms":>7s} {"dec ms":>7s} {"tgt ms":>7s} '
      f'{"pos/img":>9s} '
      f'{"test ms":>8s} {"test GiB":>8s}')
checks, notes = [], []
for tag in ('b2', 'b2_fp16', 'b1'):
    r = load(f'bench_{tag}.json')
    if r is None:
        if tag != 'b2_fp16':
            print(f'{tag:7s} FAILED')
        if tag == 'b2':
            checks.append(('batch 2 benchmark ran', False, 'FAILED'))
        continue
    t, p, te = r['train'], r['parts'], r['test']
    print(f'{tag:7s} {t["median_s"] * 1e3:8.1f} {t["images_per_s"]:6.2f} '
          f'{t["peak_mem_mib"] / 1024:8.2f} {p["floor_s"] * 1e3:8.1f} '
          f'{p["step_over_floor"]:10.3f} {p["encoder_fwd_bwd"]["median_s"] * 1e3:7.1f} '
          f'{p["resnet_fwd"]["median_s"] * 1e3:7.1f} '
          f'{p["sam_decoder_fwd_bwd"]["median_s"] * 1e3:7.1f} '
          f'{p["mask_targets"]["median_s"] * 1e3:7.1f} '
          f'{",".join(map(str, p["positives_per_image"])):>9s} '
          f'{te["median_s"] * 1e3:8.1f} {te["peak_mem_mib"] / 1024:8.2f}')
    if tag.startswith('b2'):
        peak_gb = t['peak_mem_mib'] * 2**20 / 1e9
        checks.append((f'peak memory at batch 2 ({r["train_amp"]}) <= 20 GB', peak_gb <= 20,
                       f'{peak_gb:.2f} GB = {t["peak_mem_mib"] / 1024:.2f} GiB'))
        checks.append(('step <= 1.25 x floor at batch 2', p['step_over_floor'] <= 1.25,
                       f'{p["step_over_floor"]:.3f}'))
        s = r.get('search')
        if s:
            n = s['num_images']
            notes.append(f'search over {n} images: cache build {s["prepare"]["median_s"] * 1e3:.1f} ms, '
                  f'trial {s["trial"]["median_s"] * 1e3:.1f} ms, validation pass '
                  f'({s["val_dtype"]}) {s["val_pass"]["median_s"] * 1e3:.1f} ms, '
                  f'trial / val pass = {s["trial_over_val"]:.3f}')
for note in notes:
    print(note)
pr = load('predict.json')
checks.append(('predict masks at the original size', bool(pr and pr['ok']),
               json.dumps(pr) if pr else 'FAILED'))
print('(enc/r50/dec: the floor parts; tgt: GT mask targets, not in the floor; '
      'peak: max_memory_allocated)')
print()
for name, ok, detail in checks:
    print(f'{"PASS" if ok else "FAIL":4s}  {name}: {detail}')
EOF
