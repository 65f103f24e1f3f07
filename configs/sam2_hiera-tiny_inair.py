# Pre-trains the tiny SAM 2.1 of configs/_base_/models/sam2_hiera-tiny.py as
# configs/sam_vit-tiny_inair.py pre-trains the tiny SAM: on the same in-air
# scenes, with jittered ground-truth box prompts, for the same iterations.
# Its checkpoint ships as checkpoints/sam2_hiera-tiny_inair.pth (SAM 2.1's key
# layout; docs/sam2.md: how to rebuild it).
_base_ = ['./sam_vit-tiny_inair.py', './_base_/models/sam2_hiera-tiny.py']

# the decoder's high-resolution path joins after 6,000 of the 10,000
# iterations: on from the start, this pre-training stalls (docs/sam2.md,
# "Why high_res_after")
model = dict(type='BoxPromptedSAM2', arch={{_base_.sam2_tiny_backbone.arch}},
             high_res_after=6000)
