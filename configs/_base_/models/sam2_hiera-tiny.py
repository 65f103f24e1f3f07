# A tiny SAM 2.1 for CPU runs: Hiera 16-d (16/32/64/128 over four stages of
# 1/1/3/1 blocks) with SAM 2's own patch embedding (stride 4) on a 128-px
# input, so that its stages are at strides 4/8/16/32, the decoder's image
# embedding is 8x8 (stride 16) and its masks 32x32, read with the 32x32 and
# 16x16 maps of its high-resolution path; FPN and decoder 32-d. A leaf config on bipa_vit-tiny.py
# swaps it in with
#   model = dict(backbone={{_base_.sam2_tiny_backbone}},
#                roi_head=dict(mask_head=dict(mask_decoder={{_base_.sam2_decoder}})))
# Its SAM 2 weights come from configs/sam2_hiera-tiny_inair.py.
sam2_tiny_backbone = dict(
    type='SAM2HieraAdapter',
    arch=dict(_delete_=True, embed_dim=16, num_heads=1, stages=(1, 1, 3, 1),
              global_att_blocks=(4, ), window_spec=(8, 4, 4, 4),
              window_pos_embed_bkg_spatial_size=(4, 4), img_size=128, d_model=32),
    adapter_indices=[1, 2, 3, 4, 5],  # all but the first block, as the tiny SAM's [1, 2, 3]
    out_indices=None)  # the last block of each stage
sam2_decoder = dict(type='SAM2MaskDecoder')
