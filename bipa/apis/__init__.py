from .batch import build_synthetic_batch, keep_ratio_shape
from .benchmark import BenchmarkOptions, run_benchmark, strip_weights
from .benchmark_report import check_targets, exit_status, format_report
from .domain_gap import check_same_scenes, format_domain_gap, measure_domain_gap
from .drawing import draw_instances
from .image_inference import build_inferencer, combine_predictions, expand_inputs, predict_files
from .inference import oracle_box_metrics, predict_items, test_checkpoint
from .runner import build_runner, load_config, runner_from_cfg, use_data_root
from .search_summary import best_trial, load_rounds, storage_url, summarize_rounds
from .step_breakdown import StepBreakdown, measure_breakdown

__all__ = [
    'build_synthetic_batch', 'keep_ratio_shape', 'BenchmarkOptions', 'run_benchmark',
    'strip_weights', 'check_targets', 'exit_status', 'format_report', 'check_same_scenes',
    'format_domain_gap', 'measure_domain_gap', 'draw_instances', 'build_inferencer',
    'combine_predictions', 'expand_inputs', 'predict_files', 'oracle_box_metrics',
    'predict_items', 'test_checkpoint', 'build_runner', 'load_config', 'runner_from_cfg',
    'use_data_root',
    'best_trial', 'load_rounds', 'storage_url', 'summarize_rounds', 'StepBreakdown',
    'measure_breakdown'
]
