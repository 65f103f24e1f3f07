# BiPA with SAM ViT-H (paper Sec. 3). Weights: put SAM's
# sam_vit_h_4b8939.pth and torchvision's resnet50-0676ba61.pth under checkpoints/.
custom_imports = dict(imports=['bipa'], allow_failed_imports=False)

num_classes = 7  # UIIS and multi-class USIS10K; other datasets set bbox_head.num_classes
fpn_channels = 256
sam_dim = 256  # SAM prompt/decoder width

model = dict(
    type='BiPA',
    sam_checkpoint='checkpoints/sam_vit_h_4b8939.pth',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1024,  # SAM's fixed 1024x1024 input
        pad_mask=True),
    backbone=dict(
        type='SAMViTAdapter',
        arch='vit_h',
        adapter_indices=list(range(8, 32, 2)),  # paper: blocks 8, 10, ..., 30
        out_indices=(7, 15, 23, 31),  # paper's blocks 8/16/24/32 (1-based)
        use_space_adapter=False,
        grad_mode='residual'),
    local_backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=4,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50-0676ba61.pth')),
    neck=dict(
        type='FAINeck',  # the encoder's channels and strides per level: from the backbone
        local_channels=(256, 512, 1024, 2048),
        out_channels=fpn_channels,
        num_outs=5,
        fusion='fai'),
    rpn_head=dict(
        type='RPNHead',
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        anchor_generator=dict(
            type='AnchorGenerator',
            scales=[4, 8],
            ratios=[0.5, 1.0, 2.0],
            strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0.0, 0.0, 0.0, 0.0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        # the authors' code: SmoothL1 (mmdet's Mask R-CNN uses L1 here)
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)),
    roi_head=dict(
        type='BiPARoIHead',
        positional_encoding=dict(num_feats=fpn_channels // 2, normalize=True),
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=fpn_channels,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type='Shared2FCBBoxHead',
            in_channels=fpn_channels,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=num_classes,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0.0, 0.0, 0.0, 0.0],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)),
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=fpn_channels,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type='SAMPromptMaskHead',
            embed_dim=sam_dim,
            # 5 tokens per box (2 with anchor='box': SAM's box tokens + a residual)
            prompt_generator=dict(
                type='SparsePromptGenerator', in_channels=fpn_channels, roi_size=14),
            dense_prompt=dict(
                type='DensePrompt', num_groups=16, mode='bilevel', search_interval=(1.0, 3.0)),
            loss_mask=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1),
            sampler=dict(
                type='RandomSampler',
                num=256,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(
            nms_pre=2000,
            max_per_img=1000,
            nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=True,
                ignore_iof_thr=-1),
            # at most 64 positives per image go through the SAM decoder
            sampler=dict(
                type='RandomSampler',
                num=256,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(
            nms_pre=1000,
            max_per_img=1000,
            nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(
            score_thr=0.05,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=100,
            mask_thr_binary=0.5)))
