"""Speed and memory of a BiPA config (tools/analysis/benchmark.py): the
harness, the per-module breakdown of a train step, the targets and report,
and the synthetic batches they (and the device tests) run on."""
from .batch import build_synthetic_batch, keep_ratio_shape
from .harness import BenchmarkOptions, run_benchmark, strip_weights
from .report import check_targets, exit_status, format_report
from .step_breakdown import StepBreakdown, measure_breakdown

__all__ = [
    'build_synthetic_batch', 'keep_ratio_shape', 'BenchmarkOptions', 'run_benchmark',
    'strip_weights', 'check_targets', 'exit_status', 'format_report', 'StepBreakdown',
    'measure_breakdown'
]
