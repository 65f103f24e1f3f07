# A tiny BiPA (32-d, 4-block ViT on 8-px patches of a 128-px input; ResNet-18
# of width 8) that trains on a CPU. Same code paths as ViT-H; used by the demo
# and the tests. Its SAM weights come from configs/sam_vit-tiny_inair.py.
_base_ = ['./bipa_vit-h.py']

fpn_channels = 32
sam_dim = 32
patch_size = 8  # a 16x16 embedding and 64x64 masks: finer than ViT-H's 16-px patches allow here

model = dict(
    sam_checkpoint=None,
    data_preprocessor=dict(pad_size_divisor=128),  # the ViT's img_size: every input is 128x128
    backbone=dict(
        arch=dict(_delete_=True, embed_dim=32, depth=4, num_heads=2, global_attn_indexes=(1, 3),
                  img_size=128, window_size=4, out_chans=sam_dim, patch_size=patch_size),
        adapter_indices=[1, 2, 3],
        out_indices=(0, 1, 2, 3)),
    local_backbone=dict(depth=18, base_channels=8, init_cfg=None),
    neck=dict(local_channels=(8, 16, 32, 64),
              out_channels=fpn_channels),
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
    roi_head=dict(
        positional_encoding=dict(num_feats=fpn_channels // 2),
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=dict(in_channels=fpn_channels, fc_out_channels=128),
        mask_roi_extractor=dict(out_channels=fpn_channels),
        mask_head=dict(
            embed_dim=sam_dim,
            decoder_mlp_dim=64,
            decoder_num_heads=2,
            prompt_generator=dict(in_channels=fpn_channels, hidden_dim=128))))
