# BiPA on UIIS with the paper's settings: SAM ViT-H + ResNet-50, 1024x1024,
# batch 2, AdamW lr 1e-4 / wd 1e-3, large-scale jitter, bf16 AMP, and the
# bilevel schedule T=3, K_a=30, K_b=21, K_c=7 (epochs; see the schedule file).
_base_ = [
    './_base_/models/bipa_vit-h.py', './_base_/datasets/uiis.py',
    './_base_/schedules/bilevel_paper.py', './_base_/default_runtime.py'
]

default_hooks = dict(checkpoint=dict(interval=2000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=2)
