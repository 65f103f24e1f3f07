from .cli import cpu_threads, run_cli, user_errors
from .domain_gap import check_same_scenes, format_domain_gap, measure_domain_gap
from .drawing import draw_instances
from .image_inference import build_inferencer, combine_predictions, expand_inputs, predict_files
from .inference import oracle_box_metrics, predict_items, test_checkpoint
from .runner import build_runner, load_config, runner_from_cfg, use_data_root
from .search_summary import best_trial, fail_reasons, load_rounds, storage_url, summarize_rounds

__all__ = [
    'cpu_threads', 'run_cli', 'user_errors', 'check_same_scenes', 'format_domain_gap',
    'measure_domain_gap', 'draw_instances',
    'build_inferencer', 'combine_predictions', 'expand_inputs', 'predict_files',
    'oracle_box_metrics', 'predict_items', 'test_checkpoint', 'build_runner', 'load_config',
    'runner_from_cfg', 'use_data_root', 'best_trial', 'fail_reasons', 'load_rounds',
    'storage_url', 'summarize_rounds'
]
