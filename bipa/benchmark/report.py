"""The benchmark's targets (PASS/FAIL checks) and its report, from the dict
of :func:`~bipa.benchmark.harness.run_benchmark`."""
import math
from typing import List, Optional

from .harness import FLOOR_PARTS
from .step_breakdown import format_breakdown

# the targets of configs/bipa_uiis.py on a GPU, and the run they apply to
TARGET_BATCH_SIZE = 2
MAX_PEAK_GB = 20.0
MAX_STEP_OVER_FLOOR = 1.25


def check_targets(results: dict, *, batch_size: int = TARGET_BATCH_SIZE,
                  max_peak_gb: float = MAX_PEAK_GB,
                  max_step_over_floor: float = MAX_STEP_OVER_FLOOR) -> List[dict]:
    """The targets as ``dict(name, ok, detail)``: at ``batch_size``, peak
    memory (allocated and, on CUDA, reserved) <= ``max_peak_gb`` (1e9 bytes)
    and train step <= ``max_step_over_floor`` x floor; every other batch size
    ran with a finite loss; the predict (if any) gave masks at the original
    size; no phase failed."""
    checks = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(dict(name=name, ok=bool(ok), detail=detail))

    amp = results.get('train_amp', '?')
    runs = {r['batch_size']: r for r in results.get('runs', [])}
    ref = runs.get(batch_size)
    if ref is None:
        add(f'batch {batch_size} ran', False, f'no run at batch {batch_size}')
    else:
        train = ref['train']
        if 'peak_reserved_mib' in train:
            peaks = [('allocated', train['peak_mem_mib']), ('reserved', train['peak_reserved_mib'])]
        else:
            peaks = [('RSS', train['peak_mem_mib'])]
        context = (results.get('cuda_memory') or {}).get('context_mib')
        for kind, mib in peaks:
            gb = mib * 2**20 / 1e9
            detail = f'{gb:.2f} GB = {mib / 1024:.2f} GiB'
            if kind == 'reserved' and context is not None:
                detail += f' (+ CUDA context {context / 1024:.2f} GiB)'
            if results.get('memory_cap'):
                detail += f", allocator capped at {results['memory_cap']['cap_gb']:g} GB"
            add(f'peak {kind} at batch {batch_size} ({amp}) <= {max_peak_gb:g} GB',
                gb <= max_peak_gb, detail)
        parts = ref.get('parts')
        name = f'train step <= {max_step_over_floor:g} x floor at batch {batch_size}'
        if parts is None or 'error' in parts:
            add(name, False, f"floor not measured: {(parts or {}).get('error', 'no --parts')}")
        else:
            add(name, parts['step_over_floor'] <= max_step_over_floor,
                f"{parts['step_over_floor']:.3f} = {train['median_s'] * 1e3:.1f} ms / "
                f"{parts['floor_s'] * 1e3:.1f} ms")
    for size, run in runs.items():
        if size == batch_size:
            continue
        train, test = run['train'], run['test']
        ok = math.isfinite(train['loss']) and train['median_s'] > 0 and test['median_s'] > 0
        add(f'batch {size} ran ({amp})', ok,
            f"train {train['median_s'] * 1e3:.1f} ms, test {test['median_s'] * 1e3:.1f} ms, "
            f"peak {format_mem(train['peak_mem_mib'])}, loss {train['loss']:.4f}")
    pred = results.get('predict')
    if pred is not None and 'error' in pred:
        add('predict gives masks at the original size', False, pred['error'])
    elif pred is not None:
        h, w = pred['ori_shape']
        add(f'predict gives masks at the original size {h}x{w}', pred['ok'],
            f"{pred['detections']} detections, masks {pred['masks_shape']} {pred['mask_dtype']}")
    for size, run in runs.items():
        if 'error' in run.get('breakdown', {}):
            add(f'batch {size}: breakdown ran', False, run['breakdown']['error'])
    if 'error' in results.get('search', {}):
        add('prompt search ran', False, results['search']['error'])
    return checks


def exit_status(results: dict) -> int:
    """0 when every check passed (or none was asked for), else 1."""
    return int(not all(c['ok'] for c in results.get('checks', [])))


def format_mem(mib: float) -> str:
    """``mib`` in GiB from 1 GiB, else in MiB."""
    return f'{mib / 1024:.2f} GiB' if mib >= 1024 else f'{mib:.0f} MiB'


def format_phase(t: dict, images: Optional[int] = None) -> str:
    """A phase's median time, images per second and peak memory."""
    text = f"{t['median_s'] * 1e3:9.1f} ms"
    if images:
        text += f"  {images / t['median_s']:8.2f} img/s"
    text += f"  peak {format_mem(t['peak_mem_mib'])}"
    if 'peak_reserved_mib' in t:
        text += f" (reserved {format_mem(t['peak_reserved_mib'])})"
    return text


def _run_rows(run: dict, test_dtype: str) -> List[tuple]:
    """The report's rows of one batch size (its breakdown is a block)."""
    n = run['batch_size']
    rows = [(f'batch {n}: train step',
             format_phase(run['train'], n) + f"  loss {run['train']['loss']:.4f}"),
            (f'batch {n}: test step ({test_dtype})', format_phase(run['test'], n))]
    p = run.get('parts')
    if p and 'error' in p:
        rows.append(('  floor parts', f"FAILED: {p['error']}"))
    elif p:
        rows += [(f'  {name}', format_phase(p[name])) for name in (*FLOOR_PARTS, 'mask_targets')]
        rows += [('  positive RoIs/image', f"{p['positives_per_image']} (sampler upper "
                  f"bound {p['positives_upper_bound']})"),
                 ('  floor (sum, no mask_targets)', f"{p['floor_s'] * 1e3:9.1f} ms"),
                 ('  step / floor', f"{p['step_over_floor']:9.3f}")]
    b = run.get('breakdown')
    if b and 'error' in b:
        rows.append(('  breakdown', f"FAILED: {b['error']}"))
    return rows


def _search_rows(s: dict) -> List[tuple]:
    if 'error' in s:
        return [('search', f"FAILED: {s['error']}")]
    n = s['num_images']
    rows = [('search D_val', f"{s['num_batches']} batches, {n} images, "
             f"autocast {s['autocast']}")]
    for key, label in (('prepare', 'search cache build'), ('trial', 'search trial'),
                       ('val_pass', f"validation pass ({s['val_dtype']})")):
        rows.append((label, format_phase(s[key]) + f"  {s[key]['median_s'] / n * 1e3:.2f} ms/img"))
    return rows + [('trial / val pass', f"{s['trial_over_val']:9.3f}")]


def format_report(r: dict) -> str:
    """The report: one row per number, the breakdown tables, then the
    checks as ``PASS  name: detail`` / ``FAIL  name: detail`` lines."""
    rows = [('config', r['config']), ('device', f"{r['device_name']}, torch {r['torch']}"),
            ('input', f"{r['input_size']} px, {r['instances']} instances/image"),
            ('train amp', r['train_amp'] + (f" ({r['amp_note']})" if r['amp_note'] else '')),
            ('params', f"{r['params_total']:,} total, {r['params_trainable']:,} trainable"),
            ('memory', r['mem_kind'])]
    cap = r.get('memory_cap')
    if cap:
        rows.append(('memory cap', f"{cap['cap_gb']:g} GB of {cap['total_gb']:.1f} GB "
                     f"(set_per_process_memory_fraction)"))
    if r.get('alloc_conf'):
        rows.append(('allocator', f"PYTORCH_CUDA_ALLOC_CONF={r['alloc_conf']}"))
    if r.get('device', '').startswith('cuda'):
        rows.append(('cudnn.benchmark', str(r.get('cudnn_benchmark'))))
    blocks = []
    for run in r['runs']:
        rows += _run_rows(run, r['test_dtype'])
        b = run.get('breakdown')
        if b and 'error' not in b:
            blocks.append(f"batch {run['batch_size']}: " + format_breakdown(b))
    if r.get('search'):
        rows += _search_rows(r['search'])
    pred = r.get('predict')
    if pred and 'error' in pred:
        rows.append(('predict', f"FAILED: {pred['error']}"))
    elif pred:
        rows.append((f"predict ({pred['dtype']})", format_phase(pred) + f"  {pred['detections']} "
                     f"detections, masks {pred['masks_shape']}"))
    mem = r.get('cuda_memory')
    if mem:
        smi = mem['nvidia_smi_process_mib']
        rows.append(('cuda memory at the end', (
            f"device used {format_mem(mem['device_used_mib'])} of "
            f"{format_mem(mem['total_mib'])}, reserved {format_mem(mem['reserved_mib'])}, "
            f"context ~{format_mem(mem['context_mib'])}, "
            f"nvidia-smi: {format_mem(smi) if smi is not None else 'n/a'}")))
    width = max(len(k) for k, _ in rows)
    text = '\n'.join(f'{k:<{width}}  {v}' for k, v in rows)
    for block in blocks:
        text += '\n\n' + block
    if r.get('checks'):
        text += '\n\n' + '\n'.join(f"{'PASS' if c['ok'] else 'FAIL'}  {c['name']}: {c['detail']}"
                                   for c in r['checks'])
    return text
