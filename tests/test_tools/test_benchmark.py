"""tools/analysis/gpu_check.sh and benchmark.py on CPU: one run of the script
on the tiny demo config (through a broken ``transformers`` package, as on the
GPU machine), its outputs and exit status, and the benchmark's command line.
What the benchmark measures: tests/test_apis/test_benchmark_api.py."""
import json
import os
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import ROOT, load_tool

SCRIPT = ROOT / 'tools' / 'analysis' / 'gpu_check.sh'
DEMO = 'configs/bipa_demo_synthetic.py'
FAST = ('--steps 1 --warmup 1 --breakdown-steps 2 --trials 1 --search-batches 1 '
        '--search-repeats 1 --predict 96 128 --threads 1 --max-step-over-floor 100 --input-size 64')
BROKEN_TRANSFORMERS = "raise RuntimeError('transformers 5.x: incompatible torch')\n"


@pytest.fixture(scope='module')
def benchmark():
    return load_tool('analysis/benchmark')


@pytest.fixture(scope='module')
def broken_transformers(tmp_path_factory):
    """A directory for PYTHONPATH whose ``transformers`` raises RuntimeError on
    import (not ImportError, which mmdet and mmengine would catch)."""
    root = tmp_path_factory.mktemp('site')
    (root / 'transformers').mkdir()
    (root / 'transformers' / '__init__.py').write_text(BROKEN_TRANSFORMERS)
    return root


def run_gpu_check(out_dir, pythonpath, **env) -> subprocess.CompletedProcess:
    """The script on CPU, without a wheel install, writing to ``out_dir``."""
    out_dir.mkdir()
    env = dict(os.environ, OUT=str(out_dir), PYTHONPATH=str(pythonpath), OMP_NUM_THREADS='1',
               PATH=f'{os.path.dirname(sys.executable)}:{os.environ["PATH"]}',
               GPU_CHECK_DEVICE='cpu', **dict(dict(GPU_CHECK_CONFIG=DEMO), **env))
    return subprocess.run(['bash', str(SCRIPT), 'none'], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def cpu_run(tmp_path_factory, broken_transformers):
    out = tmp_path_factory.mktemp('gpu_check') / 'out'
    proc = run_gpu_check(out, broken_transformers, GPU_CHECK_PYTEST_MARK='not cuda',
                         GPU_CHECK_STAGES='tests bench', GPU_CHECK_BENCH_ARGS=FAST)
    logs = out.parent / 'logs'
    if (out / 'gpu_check.tar.gz').exists():
        with tarfile.open(out / 'gpu_check.tar.gz') as tar:
            tar.extractall(logs, filter='data')
    return proc, out, logs / 'gpu_check'


@pytest.fixture(scope='module')
def results(cpu_run):
    return json.loads((cpu_run[2] / 'bench.json').read_text())


def test_gpu_check_script_syntax():
    proc = subprocess.run(['bash', '-n', str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_broken_transformers_breaks_mmengine_without_the_stub(broken_transformers):
    """The simulation bites: what the script must guard against."""
    proc = subprocess.run([sys.executable, '-c', 'import mmengine.optim'], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(broken_transformers)))
    assert proc.returncode != 0 and 'RuntimeError: transformers 5.x' in proc.stderr


def test_gpu_check_on_cpu_passes_and_writes_two_files(cpu_run):
    proc, out, logs = cpu_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ['gpu_check.tar.gz', 'summary.txt']
    assert {'bench.json', 'bench.log', 'pytest.xml', 'tests.log',
            'summary.txt'} <= {p.name for p in logs.iterdir()}
    summary = (out / 'summary.txt').read_text()
    assert summary == (logs / 'summary.txt').read_text()
    assert summary.rstrip().endswith('RESULT: OK') and '\nFAIL' not in summary
    for line in ('tests    OK', 'bench    OK', 'PASS  mmcv ops', 'PASS  tiny BiPA on cpu',
                 'PASS  peak RSS at batch 2', 'PASS  train step <= 100 x floor at batch 2',
                 'PASS  batch 1 ran', 'PASS  predict gives masks at the original size 96x128',
                 'train step by module', 'step / floor', 'trial / val pass'):
        assert line in summary, line


def test_gpu_check_fails_when_a_stage_fails(tmp_path, broken_transformers):
    proc = run_gpu_check(tmp_path / 'out', broken_transformers,
                         GPU_CHECK_CONFIG='configs/no_such_config.py', GPU_CHECK_STAGES='bench')
    assert proc.returncode == 1
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['gpu_check.tar.gz',
                                                                    'summary.txt']
    summary = (tmp_path / 'out' / 'summary.txt').read_text()
    assert 'bench    FAILED (exit 1)' in summary
    assert 'FAIL  benchmark: no report' in summary and 'RESULT: FAILED' in summary


def test_cli_json_has_every_phase_of_both_runs(results):
    """The command line's options reach the run (details: tests/test_apis/test_benchmark_api.py)."""
    assert results['batch_sizes'] == [2, 1] and results['train_amp'] == 'fp32'
    assert results['config'] == DEMO and results['grad_mode'] == 'residual'
    assert (results['steps'], results['warmup'], results['instances']) == (1, 1, 8)
    assert results['input_size'] == 64
    for run, n in zip(results['runs'], (2, 1)):
        assert run['batch_size'] == n and run['model_input_shape'] == [n, 3, 64, 64]
        assert len(run['train']['times_s']) == len(run['test']['times_s']) == 1
        assert run['parts']['floor_s'] > 0 and run['breakdown']['steps'] == 2
    search = results['search']
    assert (search['num_batches'], search['num_images']) == (1, 2)
    assert len(search['trial']['times_s']) == len(search['val_pass']['times_s']) == 1
    assert results['predict']['ok'] and results['predict']['ori_shape'] == [96, 128]
    assert [c['ok'] for c in results['checks']] == [True] * 4


def test_cli_arguments(benchmark):
    args = benchmark.parse_args(['c.py', '--batch-size', '2', '1', '--predict', '9', '8'])
    assert args.batch_sizes == [2, 1] and args.predict == [9, 8] and args.steps == 10
    for bad in (['--steps', '0'], ['--warmup', '-1'], ['--breakdown-steps', '0']):
        with pytest.raises(SystemExit):
            benchmark.parse_args(['c.py', *bad])
    with pytest.raises(SystemExit, match='--memory-cap-gb needs a CUDA device, not cpu'):
        benchmark.main(['c.py', '--device', 'cpu', '--memory-cap-gb', '20'])
