"""Convert a Hugging Face ``facebook/sam-vit-*`` state dict to SAM's official layout.

    python tools/model_converters/hf_sam_to_official.py pytorch_model.bin sam_vit_h.pth

The input may be a ``.bin``/``.pth`` torch file or a ``.safetensors`` file
(needs the ``safetensors`` package). The output has the keys of
``sam_vit_h_4b8939.pth`` (``image_encoder.*``, ``prompt_encoder.*``,
``mask_decoder.*``), which ``model.sam_checkpoint`` expects.
"""
import argparse
import re
from typing import Dict

import torch

# (pattern, replacement) applied in order to every key; specific rules first
_RULES = (
    (r'^vision_encoder\.', 'image_encoder.'),
    (r'^image_encoder\.layers\.', 'image_encoder.blocks.'),
    (r'^image_encoder\.patch_embed\.projection\.', 'image_encoder.patch_embed.proj.'),
    (r'^image_encoder\.neck\.conv1\.', 'image_encoder.neck.0.'),
    (r'^image_encoder\.neck\.layer_norm1\.', 'image_encoder.neck.1.'),
    (r'^image_encoder\.neck\.conv2\.', 'image_encoder.neck.2.'),
    (r'^image_encoder\.neck\.layer_norm2\.', 'image_encoder.neck.3.'),
    (r'^shared_image_embedding\.positional_embedding$',
     'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix'),
    (r'^prompt_encoder\.point_embed\.', 'prompt_encoder.point_embeddings.'),
    (r'^prompt_encoder\.mask_embed\.conv1\.', 'prompt_encoder.mask_downscaling.0.'),
    (r'^prompt_encoder\.mask_embed\.layer_norm1\.', 'prompt_encoder.mask_downscaling.1.'),
    (r'^prompt_encoder\.mask_embed\.conv2\.', 'prompt_encoder.mask_downscaling.3.'),
    (r'^prompt_encoder\.mask_embed\.layer_norm2\.', 'prompt_encoder.mask_downscaling.4.'),
    (r'^prompt_encoder\.mask_embed\.conv3\.', 'prompt_encoder.mask_downscaling.6.'),
    (r'^mask_decoder\.upscale_conv1\.', 'mask_decoder.output_upscaling.0.'),
    (r'^mask_decoder\.upscale_layer_norm\.', 'mask_decoder.output_upscaling.1.'),
    (r'^mask_decoder\.upscale_conv2\.', 'mask_decoder.output_upscaling.3.'),
    # SAM's 3-layer MLPs: HF calls them proj_in / layers.0 / proj_out
    (r'(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.0\.', r'\1.layers.1.'),
    (r'(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.proj_in\.', r'\1.layers.0.'),
    (r'(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.proj_out\.', r'\1.layers.2.'),
    (r'\.layer_norm(\d|_final_attn)\.', r'.norm\1.'),
)
# HF keeps a second copy of the random PE matrix inside its prompt encoder
_DUPLICATE = 'prompt_encoder.shared_embedding.positional_embedding'
_HF_PREFIXES = ('vision_encoder.', 'prompt_encoder.', 'mask_decoder.', 'shared_image_embedding.')


def convert_hf_sam_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename the keys of a HF ``SamModel`` state dict to SAM's official ones."""
    if not any(k.startswith('vision_encoder.') for k in state):
        raise ValueError("not a Hugging Face SAM state dict: no 'vision_encoder.*' keys")
    unknown = [k for k in state if not k.startswith(_HF_PREFIXES)]
    if unknown:
        raise ValueError(f'unexpected keys in the HF SAM state dict: {unknown[:8]}')
    out = {}
    for key, value in state.items():
        if key == _DUPLICATE:
            continue
        new = key
        for pattern, repl in _RULES:
            new = re.sub(pattern, repl, new)
        if new in out:
            raise ValueError(f'two HF keys map to {new}')
        out[new] = value
    shared = state.get('shared_image_embedding.positional_embedding')
    duplicate = state.get(_DUPLICATE)
    if shared is not None and duplicate is not None and not torch.equal(shared, duplicate):
        raise ValueError(f'{_DUPLICATE} differs from shared_image_embedding.positional_embedding')
    return out


def _load(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    return torch.load(path, map_location='cpu', weights_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='HF SAM weights (.bin, .pth or .safetensors)')
    parser.add_argument('dst', help='output path in the official layout (.pth)')
    args = parser.parse_args()
    converted = convert_hf_sam_state_dict(_load(args.src))
    torch.save(converted, args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
