default_scope = 'mmdet'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # CheckpointHook writing each checkpoint whole (temporary file, then renamed), whose
    # --resume skips a torn one (bipa.engine.AtomicCheckpointHook)
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
# distributed runs: batch-norm running statistics averaged over ranks every iteration
custom_hooks = [dict(type='SyncNormStatsHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    # PYTORCH_CUDA_ALLOC_CONF for every runner (bipa.apis.runner_from_cfg) and the benchmark
    # (bipa.utils.setup_cuda_allocator): at batch 2 on configs/bipa_uiis.py it keeps the
    # cache near the allocated peak instead of about twice it (docs/speed.md, ViT-H on a GPU)
    cuda_alloc_conf='expandable_segments:True',
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))  # gloo when there is no GPU (bipa.utils.setup_launcher)

# scalars (losses, lr, the search's f per trial and rho per round, COCO mAP) to
# <work_dir>/<timestamp>/vis_data: scalars.json and TensorBoard's event file
# (tensorboard --logdir <work_dir>)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
# no name: mmengine names it after the run, so that each Runner of a process (the
# demo's, the tests') gets its own visualizer writing to its own log dir; a fixed
# name hands every later Runner the first one's, and its save_dir
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends)
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
