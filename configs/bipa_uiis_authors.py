# BiPA on UIIS with the authors' choice for every switch where their public
# code (ZeAstra/BiPA) and this project differ (docs/fidelity.md): their
# schedule (bipa_uiis_authors-schedule.py), model, losses, data and optimizer.
# The one exception is D_val: they score trials on the split they report as
# test; here, as in every config, it is held out of train.
_base_ = ['./bipa_uiis_authors-schedule.py']

model = dict(
    backbone=dict(adapter_init='random'),
    neck=dict(vit_channel_attention='shared', sampling_norm=False),
    roi_head=dict(
        pe_mask='none',
        mask_head=dict(prompt_generator=dict(arch='authors'), mask_upsample='probs')))

optim_wrapper = dict(dtype='float16', clip_grad=None)
train_cfg = dict(finetune=dict(reset_optimizer=True))

train_pipeline = [
    dict(type='CheckedLoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale={{_base_.image_size}}, ratio_range=(0.1, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size={{_base_.image_size}},
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_sampler=None,
    dataset=dict(filter_cfg=dict(_delete_=True, filter_empty_gt=False, min_size=0),
                 pipeline=train_pipeline))
