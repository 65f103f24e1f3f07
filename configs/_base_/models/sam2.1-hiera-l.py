# SAM 2.1 Hiera-L in place of SAM ViT-H: its image encoder (Hiera-L + FPN,
# UA-ViT adapters on every second block from block 12) and mask decoder (with
# its high-resolution path). FAI fuses ResNet-50 with Hiera's four stages
# (144/288/576/1152 channels at strides 4/8/16/32, read from the backbone).
# Weights: Meta's sam2.1_hiera_large.pt under checkpoints/. A leaf config on a
# ViT-H config swaps it in with
#   model = dict(sam_checkpoint={{_base_.sam2_checkpoint}},
#                backbone={{_base_.sam2_backbone}},
#                roi_head=dict(mask_head=dict(mask_decoder={{_base_.sam2_decoder}})))
# (the ViT-H backbone's other keys, use_space_adapter and grad_mode, stay).
sam2_checkpoint = 'checkpoints/sam2.1_hiera_large.pt'
sam2_backbone = dict(
    type='SAM2HieraAdapter',
    arch='hiera_l',  # or hiera_t / hiera_s / hiera_b+ with their sam2.1_hiera_*.pt
    adapter_indices=None,  # every second block from depth // 4: 12, 14, ..., 46
    out_indices=None)  # the last block of each stage
sam2_decoder = dict(type='SAM2MaskDecoder')
